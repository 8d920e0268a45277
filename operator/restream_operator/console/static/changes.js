// Changes from the console: the form helpers the creation page uses, and the destination
// actions a LiveStream's page mounts (window.RestreamChanges). Every change is a JSON
// request to the console, which writes it with the viewer's own credentials; what the
// API server refuses comes back as {message, fields} and is shown next to the field it
// names. Text only (textContent, never HTML): names and messages come from the cluster.
"use strict";

(() => {
  const STYLE = "/static/changes.css";
  let lastId = 0;
  const newId = (prefix) => `${prefix}-${++lastId}`;

  // The LiveStream page loads this file but not its style sheet.
  function ensureStyle() {
    if (!document.querySelector(`link[href="${STYLE}"]`)) {
      const link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = STYLE;
      document.head.append(link);
    }
  }

  const enc = encodeURIComponent;
  const destinationUrl = (ns, name, dest) =>
    `/api/livestreams/${enc(ns)}/${enc(name)}/restreams/${enc(dest)}`;
  const pageUrl = (ns, name) => `/livestreams/${enc(ns)}/${enc(name)}`;

  // {ok, status, message, fields, managers}; never throws.
  async function send(method, url, body) {
    const init = { method, credentials: "same-origin", cache: "no-store", headers: {} };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch {
      return { ok: false, status: 0, message: "The console did not answer: is it still running?",
               fields: {}, managers: [] }; // prettier-ignore
    }
    const text = await response.text();
    let data = {};
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text.trim() };
    }
    return {
      ok: response.ok,
      status: response.status,
      message: data.message || `${response.status} ${response.statusText}`,
      fields: data.fields || {},
      managers: data.managers || [],
      data,
    };
  }

  // A labelled control with its message element (aria-describedby), for one form field.
  // `field` is the server's name for it (data-field), where its messages go.
  function control({ label, field, type = "text", hint = "", attrs = {} }) {
    const wrap = document.createElement("div");
    wrap.className = type === "checkbox" ? "field checkbox" : "field";
    const input = document.createElement("input");
    input.type = type;
    input.id = newId("f");
    input.dataset.field = field;
    for (const [k, v] of Object.entries(attrs)) input.setAttribute(k, v);
    const labelEl = document.createElement("label");
    labelEl.htmlFor = input.id;
    labelEl.textContent = label;
    const error = document.createElement("p");
    error.className = "field-error";
    error.id = `${input.id}-error`;
    const described = [error.id];
    const parts = type === "checkbox" ? [input, labelEl] : [labelEl, input];
    if (hint) {
      const hintEl = document.createElement("p");
      hintEl.className = "hint";
      hintEl.id = `${input.id}-hint`;
      hintEl.textContent = hint;
      described.unshift(hintEl.id);
      parts.push(hintEl);
    }
    input.setAttribute("aria-describedby", described.join(" "));
    input.dataset.error = error.id;
    wrap.append(...parts, error);
    return { wrap, input };
  }

  function alertBox() {
    const box = document.createElement("p");
    box.className = "form-error";
    box.setAttribute("role", "alert");
    box.hidden = true;
    return box;
  }

  function clearErrors(form, alert) {
    for (const input of form.querySelectorAll("[data-field]")) {
      input.removeAttribute("aria-invalid");
      const error = document.getElementById(input.dataset.error);
      if (error) error.textContent = "";
    }
    alert.textContent = "";
    alert.hidden = true;
  }

  function conflictHint(managers) {
    if (managers.length === 0) return "";
    return (
      ` Managed by ${managers.join(", ")}: change it where that tool takes its ` +
      "configuration from (for Argo CD or Flux, in git), or take the field over below."
    );
  }

  // After a conflict, and only then: the person may take the fields over, as kubectl
  // apply --force-conflicts does. The answer named who owns them; a GitOps tool will put
  // its value back at its next sync, which the button says.
  function takeOverButton(managers, retry) {
    const b = button(`Take over from ${managers.join(", ")} and change it`);
    b.className = "danger";
    b.title = "A GitOps tool that owns this field will set it back at its next sync.";
    b.addEventListener("click", () => {
      b.remove();
      retry({ takeOver: true });
    });
    return b;
  }

  // The answer's messages next to the fields they name; the rest in the alert.
  function showErrors(form, alert, answer) {
    const unplaced = [];
    let first = null;
    for (const [name, message] of Object.entries(answer.fields)) {
      const input = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
      const error = input && document.getElementById(input.dataset.error);
      if (!error) {
        unplaced.push(`${name}: ${message}`);
        continue;
      }
      input.setAttribute("aria-invalid", "true");
      error.textContent = message;
      first = first || input;
    }
    let text;
    if (first && unplaced.length === 0) {
      text = "Not saved: see the messages next to the fields.";
    } else {
      text = `Not saved. ${answer.message}${conflictHint(answer.managers)}`;
      if (unplaced.length > 0) text += ` (${unplaced.join("; ")})`;
    }
    alert.textContent = text;
    alert.hidden = false;
    (first || alert).focus?.();
  }

  // A change made, with what admission warned about it (e.g. a platform's limits).
  function withWarnings(text, answer) {
    const warnings = answer.data?.warnings || [];
    return warnings.length ? `${text} Admission warns: ${warnings.join(" ")}` : text;
  }

  function button(text, { label = "", kind = "button", className = "" } = {}) {
    const b = document.createElement("button");
    b.type = kind;
    b.textContent = text;
    if (label) b.setAttribute("aria-label", label);
    if (className) b.className = className;
    return b;
  }

  // ---- the destination dialog: add, or edit one ------------------------------------

  let dialog = null; // built once, reused

  function buildDialog() {
    const d = document.createElement("dialog");
    d.className = "changes-dialog";
    const title = document.createElement("h2");
    title.id = newId("dialog-title");
    d.setAttribute("aria-labelledby", title.id);
    const form = document.createElement("form");
    form.noValidate = true;
    const alert = alertBox();
    alert.tabIndex = -1;
    const name = control({ label: "Name", field: "name", attrs: { autocomplete: "off" } });
    const url = control({
      label: "Server URL",
      field: "serverUrl",
      hint: "rtmp://, rtmps:// or srt://, without the stream key",
      attrs: { autocomplete: "off", spellcheck: "false" },
    });
    const key = control({
      label: "Stream key",
      field: "streamKey",
      type: "password",
      attrs: { autocomplete: "new-password", spellcheck: "false" },
    });
    const enabled = control({ label: "Enabled (relay to this destination)", field: "enabled",
                              type: "checkbox" }); // prettier-ignore
    const save = button("Save", { kind: "submit" });
    const cancel = button("Cancel");
    const buttons = document.createElement("div");
    buttons.className = "buttons";
    buttons.append(save, cancel);
    form.append(alert, name.wrap, url.wrap, key.wrap, enabled.wrap, buttons);
    d.append(title, form);
    document.body.append(d);
    cancel.addEventListener("click", () => d.close());
    const keyHint = document.createElement("p");
    keyHint.className = "hint";
    keyHint.id = `${key.input.id}-hint`;
    key.wrap.insertBefore(keyHint, key.wrap.querySelector(".field-error"));
    key.input.setAttribute("aria-describedby", `${keyHint.id} ${key.input.dataset.error}`);
    return { d, title, form, alert, name, url, key, enabled, save, keyHint, context: null };
  }

  function openDestination(context, editing, announce) {
    ensureStyle();
    dialog = dialog || buildDialog();
    const ui = dialog;
    ui.context = { ...context, editing, announce };
    clearErrors(ui.form, ui.alert);
    ui.title.textContent = editing
      ? `Edit destination ${editing.name}`
      : `Add a destination to ${context.name}`;
    ui.name.input.value = editing ? editing.name : "";
    ui.name.input.readOnly = Boolean(editing); // the name is the entry's key
    ui.url.input.value = editing?.serverUrl || "";
    ui.key.input.value = "";
    ui.keyHint.textContent = editing
      ? "Leave empty to keep the current key. A new key is stored in a Secret (if the " +
        "console stored this destination's key before, a running relay reads the new one " +
        "at its next start)."
      : "Stored in a Secret that the LiveStream references, never in the LiveStream.";
    ui.enabled.input.checked = editing ? editing.enabled : true;
    if (!ui.bound) {
      ui.bound = true;
      ui.form.addEventListener("submit", (e) => {
        e.preventDefault();
        saveDestination(ui);
      });
    }
    ui.d.showModal();
    (editing ? ui.url.input : ui.name.input).focus();
  }

  async function saveDestination(ui, extra = {}) {
    const { namespace, name, editing, announce } = ui.context;
    clearErrors(ui.form, ui.alert);
    const dest = ui.name.input.value;
    if (!dest.trim()) {
      showErrors(ui.form, ui.alert, { fields: { name: "Enter the destination's name." },
                                      message: "", managers: [] }); // prettier-ignore
      return;
    }
    // Empty: kept as it is (an edit), or named missing by the console (a new one).
    const body = { enabled: ui.enabled.input.checked, ...extra };
    if (ui.url.input.value.trim()) body.serverUrl = ui.url.input.value.trim();
    if (ui.key.input.value) body.streamKey = ui.key.input.value;
    ui.save.disabled = true;
    const answer = await send("PUT", destinationUrl(namespace, name, dest), body);
    ui.save.disabled = false;
    if (!answer.ok) {
      showErrors(ui.form, ui.alert, answer);
      if (answer.status === 409 && answer.managers?.length && !extra.takeOver) {
        ui.alert.append(" ", takeOverButton(answer.managers, (more) => saveDestination(ui, more)));
      }
      return;
    }
    ui.key.input.value = "";
    ui.d.close();
    announce(withWarnings(`${editing ? "Saved" : "Added"} ${dest}.`, answer));
  }

  // ---- confirming a removal ---------------------------------------------------------

  let confirmer = null;

  function confirmRemoval(text) {
    ensureStyle();
    if (!confirmer) {
      const d = document.createElement("dialog");
      d.className = "changes-dialog";
      const p = document.createElement("p");
      p.id = newId("confirm-text");
      d.setAttribute("aria-labelledby", p.id);
      const yes = button("Remove", { className: "danger" });
      const no = button("Keep it");
      const buttons = document.createElement("div");
      buttons.className = "buttons";
      buttons.append(yes, no);
      d.append(p, buttons);
      document.body.append(d);
      confirmer = { d, p, yes, no };
    }
    const c = confirmer;
    c.p.textContent = text;
    return new Promise((resolve) => {
      const done = (value) => {
        c.yes.onclick = c.no.onclick = c.d.onclose = null;
        if (c.d.open) c.d.close();
        resolve(value);
      };
      c.yes.onclick = () => done(true);
      c.no.onclick = () => done(false);
      c.d.onclose = () => done(false);
      c.d.showModal();
      c.no.focus(); // the safe choice first
    });
  }

  // ---- what the LiveStream page mounts ----------------------------------------------

  function statusLine() {
    const p = document.createElement("p");
    p.className = "changes-status";
    p.setAttribute("role", "status");
    return p;
  }

  function mountPage(element, { namespace, name }) {
    ensureStyle();
    let box = element.querySelector(":scope > .changes-page");
    if (!box) {
      box = document.createElement("div");
      box.className = "changes-page";
      const add = button("Add destination");
      const status = statusLine();
      add.addEventListener("click", () =>
        openDestination(box.context, null, (text) => {
          status.textContent = text;
        }),
      );
      box.append(add, status);
      element.append(box);
    }
    box.context = { namespace, name };
  }

  function isEnabled(restream) {
    if (typeof restream.enabled === "boolean") return restream.enabled;
    return restream.state !== "Disabled";
  }

  function mountCard(card, { namespace, name, restream }) {
    ensureStyle();
    const actions = card.querySelector(".card-actions");
    if (!actions) return;
    const dest = restream?.name ?? card.dataset.destination;
    let box = actions.querySelector(":scope > .changes-card");
    if (!box) {
      box = document.createElement("div");
      box.className = "changes-card";
      const edit = button("Edit");
      const toggle = button("Disable");
      const remove = button("Remove", { className: "danger" });
      const alert = alertBox();
      const status = statusLine();
      box.append(edit, toggle, remove, alert, status);
      actions.append(box);
      // request(extra): the change, with extra body fields (a take-over) when retried.
      const busy = async (request, done, extra = {}) => {
        alert.hidden = true;
        status.textContent = "";
        for (const b of [edit, toggle, remove]) b.disabled = true;
        const answer = await request(extra);
        for (const b of [edit, toggle, remove]) b.disabled = false;
        if (answer.ok) {
          status.textContent = withWarnings(done, answer);
        } else {
          alert.textContent = `Not changed. ${answer.message}${conflictHint(answer.managers)}`;
          if (answer.status === 409 && answer.managers?.length && !extra.takeOver) {
            alert.append(" ", takeOverButton(answer.managers, (more) => busy(request, done, more)));
          }
          alert.hidden = false;
        }
      };
      edit.addEventListener("click", () => {
        const c = box.context;
        openDestination(c, { name: c.dest, serverUrl: c.restream.serverUrl, enabled: c.enabled },
                        (text) => { status.textContent = text; }); // prettier-ignore
      });
      toggle.addEventListener("click", () => {
        const c = box.context;
        const enabled = !c.enabled;
        busy(
          (extra) =>
            send("PATCH", destinationUrl(c.namespace, c.name, c.dest), { enabled, ...extra }),
          `${enabled ? "Enabled" : "Disabled"} ${c.dest}.`,
        );
      });
      remove.addEventListener("click", async () => {
        const c = box.context;
        const sure = await confirmRemoval(
          `Remove destination ${c.dest} from LiveStream ${c.namespace}/${c.name}? ` +
            "Its relay stops; a key the console stored for it is deleted.",
        );
        if (!sure) {
          remove.focus();
          return;
        }
        busy(() => send("DELETE", destinationUrl(c.namespace, c.name, c.dest)), `Removed ${c.dest}.`);
      });
      box.parts = { edit, toggle, remove };
    }
    const enabled = isEnabled(restream || {});
    box.context = { namespace, name, dest, restream: restream || {}, enabled };
    box.parts.edit.setAttribute("aria-label", `Edit ${dest}`);
    box.parts.toggle.textContent = enabled ? "Disable" : "Enable";
    box.parts.toggle.setAttribute("aria-label", `${enabled ? "Disable" : "Enable"} ${dest}`);
    box.parts.remove.setAttribute("aria-label", `Remove ${dest}`);
  }

  window.RestreamChanges = {
    mountPage,
    mountCard,
    // for the creation page (new.js)
    ui: { control, alertBox, button, clearErrors, showErrors, send, pageUrl, ensureStyle },
  };
})();
