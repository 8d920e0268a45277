// The overview: one row per LiveStream, kept current from the server's event stream.
// No framework and no build step: the console serves this file as it is.
"use strict";

(() => {
  const table = document.getElementById("overview");
  const tbody = table.tBodies[0];
  const empty = document.getElementById("empty");
  const connection = document.getElementById("connection");
  const scope = document.getElementById("scope");
  const rows = new Map(); // "namespace/name" -> its <tr>
  const COLUMNS = ["namespace", "name", "broadcasting", "ingest", "live", "problems"];

  const keyOf = (s) => `${s.namespace}/${s.name}`;
  const sortsBefore = (a, b) =>
    a.namespace < b.namespace || (a.namespace === b.namespace && a.name < b.name);

  function newRow(s) {
    const tr = document.createElement("tr");
    tr.dataset.key = keyOf(s);
    tr.dataset.namespace = s.namespace;
    tr.dataset.name = s.name;
    for (const col of COLUMNS) {
      // The name heads its row, so that a screen reader announces it with each cell.
      const cell = document.createElement(col === "name" ? "th" : "td");
      if (col === "name") cell.scope = "row";
      cell.dataset.col = col;
      tr.append(cell);
    }
    return tr;
  }

  function broadcastingText(value) {
    if (value === true) return "On air";
    if (value === false) return "No";
    return "Not reported yet";
  }

  function problemsList(problems) {
    if (problems.length === 0) {
      const fine = document.createElement("span");
      fine.className = "fine";
      fine.textContent = "Nothing";
      return fine;
    }
    const list = document.createElement("ul");
    list.className = "problems";
    for (const p of problems) {
      const item = document.createElement("li");
      const title = document.createElement("strong");
      title.textContent = `${p.type} ${p.status}`;
      item.append(title, p.reason ? ` (${p.reason})` : "");
      if (p.message) {
        const message = document.createElement("span");
        message.className = "message";
        message.textContent = p.message;
        item.append(message);
      }
      list.append(item);
    }
    return list;
  }

  // Text only (textContent, never HTML): names and messages come from the cluster.
  function fill(tr, s) {
    const cell = (col) => tr.querySelector(`[data-col="${col}"]`);
    cell("namespace").textContent = s.namespace;
    const link = document.createElement("a");
    link.href = `/livestreams/${encodeURIComponent(s.namespace)}/${encodeURIComponent(s.name)}`;
    link.textContent = s.name;
    cell("name").replaceChildren(link);
    const on = cell("broadcasting");
    on.textContent = broadcastingText(s.broadcasting);
    on.classList.toggle("on-air", s.broadcasting === true);
    cell("ingest").textContent = s.ingest ?? "Not reported yet";
    cell("live").textContent = `${s.live ?? "–"}/${s.total}`;
    cell("problems").replaceChildren(problemsList(s.problems));
  }

  function showCount() {
    table.hidden = rows.size === 0;
    empty.hidden = rows.size !== 0;
  }

  function upsert(s) {
    let tr = rows.get(keyOf(s));
    if (!tr) {
      tr = newRow(s);
      const next = [...tbody.rows].find((r) => sortsBefore(s, r.dataset));
      tbody.insertBefore(tr, next ?? null);
      rows.set(keyOf(s), tr);
    }
    fill(tr, s);
    showCount();
  }

  function remove(s) {
    const tr = rows.get(keyOf(s));
    if (tr) {
      tr.remove();
      rows.delete(keyOf(s));
    }
    showCount();
  }

  function replaceAll(items) {
    tbody.replaceChildren();
    rows.clear();
    for (const s of items) upsert(s);
    showCount();
  }

  function connect() {
    const source = new EventSource("/api/livestreams/stream");
    let failed = false;
    source.addEventListener("snapshot", (e) => {
      const data = JSON.parse(e.data);
      failed = false;
      replaceAll(data.items);
      scope.textContent = data.note || "Every namespace.";
      connection.textContent = "Live: changes appear as the cluster reports them.";
    });
    for (const kind of ["added", "modified"]) {
      source.addEventListener(kind, (e) => upsert(JSON.parse(e.data)));
    }
    source.addEventListener("deleted", (e) => remove(JSON.parse(e.data)));
    source.addEventListener("failure", (e) => {
      failed = true;
      connection.textContent = `${JSON.parse(e.data).message} Trying again in a few seconds.`;
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        connection.textContent =
          "Disconnected: the console stopped, or this session is no longer valid. " +
          "Open the URL the console printed.";
      } else if (!failed) {
        connection.textContent = "Connection lost: reconnecting…";
      }
    });
  }

  connect();
})();
