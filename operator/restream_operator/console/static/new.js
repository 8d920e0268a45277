// The creation form: a LiveStream with its destinations, written by the console with the
// viewer's credentials (POST /api/livestreams). Admission's messages come back by field
// (`name`, `restreams[1].serverUrl`...) and appear next to the control they name.
"use strict";

(() => {
  const { control, button, clearErrors, showErrors, send, pageUrl } = window.RestreamChanges.ui;
  const form = document.getElementById("new-livestream");
  const alert = document.getElementById("form-error");
  const rows = document.getElementById("destination-rows");
  const addRow = document.getElementById("add-row");
  const create = document.getElementById("create");

  const namespace = control({ label: "Namespace", field: "namespace",
                              attrs: { autocomplete: "off", spellcheck: "false" } }); // prettier-ignore
  const name = control({
    label: "Name",
    field: "name",
    hint: "Lowercase letters, digits and '-', starting with a letter (it names the ingest).",
    attrs: { autocomplete: "off", spellcheck: "false" },
  });
  const hls = control({ label: "Serve the stream as HLS too", field: "playback.hls",
                        type: "checkbox" }); // prettier-ignore
  document.getElementById("identity").append(namespace.wrap, name.wrap, hls.wrap);

  // Each row's fields are named by its position, as the server names them.
  function renumber() {
    [...rows.children].forEach((row, i) => {
      row.querySelector("legend").textContent = `Destination ${i + 1}`;
      for (const input of row.querySelectorAll("[data-part]")) {
        input.dataset.field = `restreams[${i}].${input.dataset.part}`;
      }
      row.querySelector(".remove-row").setAttribute("aria-label", `Remove destination ${i + 1}`);
    });
  }

  function newRow() {
    const row = document.createElement("li");
    const set = document.createElement("fieldset");
    set.append(document.createElement("legend"));
    const parts = [
      ["name", control({ label: "Name", field: "", hint: "e.g. Youtube",
                         attrs: { autocomplete: "off" } })], // prettier-ignore
      ["serverUrl", control({ label: "Server URL", field: "",
                              hint: "rtmp://, rtmps:// or srt://, without the stream key",
                              attrs: { autocomplete: "off", spellcheck: "false" } })], // prettier-ignore
      ["streamKey", control({ label: "Stream key", field: "", type: "password",
                              attrs: { autocomplete: "new-password" } })], // prettier-ignore
      ["enabled", control({ label: "Enabled", field: "", type: "checkbox" })],
    ];
    for (const [part, c] of parts) {
      c.input.dataset.part = part;
      set.append(c.wrap);
    }
    set.querySelector('[data-part="enabled"]').checked = true;
    const remove = button("Remove", { className: "remove-row" });
    remove.addEventListener("click", () => {
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      renumber();
      (next ? next.querySelector('[data-part="name"]') : addRow).focus();
    });
    set.append(remove);
    row.append(set);
    rows.append(row);
    renumber();
    return row;
  }

  addRow.addEventListener("click", () => newRow().querySelector('[data-part="name"]').focus());
  newRow();

  send("GET", "/api/changes/defaults").then((answer) => {
    if (answer.ok && !namespace.input.value) namespace.input.value = answer.data.namespace;
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form, alert);
    const value = (row, part) => row.querySelector(`[data-part="${part}"]`);
    const body = {
      namespace: namespace.input.value.trim(),
      name: name.input.value.trim(),
      playback: { hls: hls.input.checked },
      restreams: [...rows.children].map((row) => ({
        name: value(row, "name").value,
        serverUrl: value(row, "serverUrl").value.trim(),
        streamKey: value(row, "streamKey").value,
        enabled: value(row, "enabled").checked,
      })),
    };
    create.disabled = true;
    const answer = await send("POST", "/api/livestreams", body);
    create.disabled = false;
    if (answer.ok) {
      window.location.assign(pageUrl(body.namespace, body.name));
    } else {
      showErrors(form, alert, answer);
    }
  });
})();
