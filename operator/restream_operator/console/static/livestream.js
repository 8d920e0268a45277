// A LiveStream's page: its ingest, destinations, bitrates, preview and Events, kept
// current from the server's event stream. No framework and no build step (hls.js aside,
// which the page uses when the console was installed with it).
"use strict";

(() => {
  const parts = location.pathname.split("/");
  const namespace = decodeURIComponent(parts[2] ?? "");
  const name = decodeURIComponent(parts[3] ?? "");
  const base = `/api/livestreams/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
  const $ = (id) => document.getElementById(id);
  const connection = $("connection");
  const SAMPLE_MS = 5000; // so that lines go on while the status, unchanged, is not sent
  const MAX_SAMPLES = 720; // an hour of samples: the page's memory stays flat
  const INGEST = "Incoming";

  let current = null; // the last detail
  let changes = null; // window.RestreamChanges, once mounted
  const cards = new Map(); // destination name -> {li, spec (JSON), actions}
  const events = new Map(); // uid -> event summary

  document.title = `${name} · ${namespace} · restream-operator console`;
  $("title").textContent = name;

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props);
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  // ---- time -------------------------------------------------------------------------

  function relative(iso) {
    const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (!Number.isFinite(seconds)) return "";
    if (seconds < 5) return "just now";
    if (seconds < 90) return `${seconds} s ago`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} days ago`;
  }

  function when(iso) {
    if (!iso) return el("span", { textContent: "–" });
    const time = el("time", { dateTime: iso, className: "relative" });
    time.dataset.iso = iso;
    time.textContent = `${relative(iso)} (${new Date(iso).toLocaleString()})`;
    return time;
  }

  function refreshTimes() {
    for (const t of document.querySelectorAll("time.relative")) {
      t.textContent = `${relative(t.dataset.iso)} (${new Date(t.dataset.iso).toLocaleString()})`;
    }
  }

  const kbps = (v) => (typeof v === "number" ? `${v} kbit/s` : "–");

  // ---- ingest -----------------------------------------------------------------------

  // What the ingest measured of the stream itself (status.ingest.video/audio), in the
  // words a platform's ingest requirements use.
  function measuredVideo(v) {
    if (!v) return "–";
    const parts = [];
    if (v.width && v.height) parts.push(`${v.width}×${v.height}`);
    if (v.frameRate) parts.push(`${v.frameRate} fps`);
    if (v.keyframeIntervalSeconds) parts.push(`a keyframe every ${v.keyframeIntervalSeconds} s`);
    if (typeof v.bitrateKbps === "number") parts.push(kbps(v.bitrateKbps));
    return parts.join(", ") || "Measuring…";
  }

  function measuredAudio(a) {
    if (!a) return "–";
    const parts = [];
    if (a.sampleRateHz) parts.push(`${a.sampleRateHz / 1000} kHz`);
    if (a.channels) parts.push(a.channels === 1 ? "mono" : a.channels === 2 ? "stereo" : `${a.channels} channels`);
    if (typeof a.bitrateKbps === "number") parts.push(kbps(a.bitrateKbps));
    return parts.join(", ") || "Measuring…";
  }

  // Where each of status.ingest's URLs shows, and what shows while it has none.
  const URLS = [
    ["rtmp-url", "rtmpUrl", "Not reported yet"],
    ["external-url", "externalUrl", "None"],
    ["rtmps-url", "rtmpsUrl", "Not reported yet"],
    ["external-rtmps-url", "externalRtmpsUrl", "None"],
    ["srt-url", "srtUrl", "Not reported yet"],
    ["external-srt-url", "externalSrtUrl", "None"],
  ];

  // The rows of the protocols the spec turns on (an RTMP-only LiveStream shows no
  // RTMPS or SRT row); a protocol's error row only while the status gives a reason.
  function renderProtocols(d) {
    const ingest = d.status.ingest;
    const served = new Set(d.protocols);
    for (const row of document.querySelectorAll("[data-protocol]")) {
      const error = row.dataset.error;
      row.hidden = !served.has(row.dataset.protocol) || (error !== undefined && !ingest[error]);
    }
    for (const [id, field, none] of URLS) {
      $(id).textContent = ingest[field] ?? none;
      // Nothing to copy, no button to press.
      document.querySelector(`button[data-copy="${id}"]`).hidden = !ingest[field];
    }
    $("rtmps-error").textContent = ingest.rtmpsError ?? "";
    $("srt-error").textContent = ingest.srtError ?? "";
  }

  // Which protocol the encoder came in by, and from where (not reported over SRT).
  function client(d) {
    const ingest = d.status.ingest;
    if (!d.status.broadcasting) return "No broadcast";
    if (!ingest.clientProtocol) return "Not reported";
    const from = ingest.clientAddress ? `from ${ingest.clientAddress}` : "address not reported";
    return `${ingest.clientProtocol}, ${from}`;
  }

  function renderIngest(d) {
    const ingest = d.status.ingest;
    renderProtocols(d);
    $("ingest-client").textContent = client(d);
    $("key-secret").textContent =
      `In Secret ${d.keySecret.name}, key ${d.keySecret.key}.`;
    $("ingest-bitrate").textContent = d.status.broadcasting ? kbps(ingest.bitrateKbps) : "No broadcast";
    const codecs = [ingest.videoCodec, ingest.audioCodec].filter(Boolean).join(", ");
    const missing = ingest.missingTracks?.length ? ` (missing: ${ingest.missingTracks.join(", ")})` : "";
    $("ingest-codecs").textContent = (codecs || "–") + missing;
    $("ingest-video").textContent = measuredVideo(ingest.video);
    $("ingest-audio").textContent = measuredAudio(ingest.audio);
    const on = d.status.broadcasting;
    const summary = on === true ? "On air" : on === false ? "Not broadcasting" : "Broadcasting: not reported yet";
    const since = on && d.status.broadcastStartedAt ? ` since ${d.status.broadcastStartedAt}` : "";
    $("summary").textContent =
      `Namespace ${d.namespace}. ${summary}${since}.` +
      (d.status.liveRestreams ? ` Destinations live: ${d.status.liveRestreams}.` : "") +
      (d.suspend ? " Suspended (spec.suspend)." : "");
  }

  // The stream key is fetched on request only, with a POST: never in a URL, never kept
  // by this script beyond the element that shows it.
  async function revealKey() {
    const message = $("key-message");
    message.textContent = "";
    let reply;
    try {
      reply = await fetch(`${base}/key`, { method: "POST", credentials: "same-origin" });
    } catch (e) {
      message.textContent = `The console did not answer: ${e.message}`;
      return;
    }
    const body = await reply.json().catch(() => ({ message: `${reply.status}` }));
    if (!reply.ok) {
      message.textContent = `Refused: ${body.message}`;
      return;
    }
    $("stream-key").textContent = body.key;
    for (const id of ["stream-key", "copy-key", "hide-key"]) $(id).hidden = false;
    $("reveal-key").hidden = true;
    $("hide-key").focus();
  }

  function hideKey() {
    $("stream-key").textContent = "";
    for (const id of ["stream-key", "copy-key", "hide-key"]) $(id).hidden = true;
    $("reveal-key").hidden = false;
    $("reveal-key").focus();
  }

  async function copy(text, button) {
    const label = button.textContent;
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed: select the text";
    }
    setTimeout(() => (button.textContent = label), 2000);
  }

  // ---- destinations -----------------------------------------------------------------

  const STATE_CLASS = {
    Live: "good", Connecting: "busy", Pending: "busy", Idle: "quiet", Disabled: "quiet",
    Unknown: "quiet", Retrying: "bad", Failed: "bad",
  };

  function fillCard(card, spec, st) {
    const state = st?.state ?? (spec.enabled === false ? "Disabled" : "Not reported yet");
    card.li.className = `card state-${STATE_CLASS[state] ?? "quiet"}`;
    const fields = el("dl", { className: "fields" },
      el("dt", { textContent: "State" }),
      el("dd", {}, el("span", { className: "state", textContent: state })),
      el("dt", { textContent: "Since" }), el("dd", {}, when(st?.since)),
      el("dt", { textContent: "Restarts" }), el("dd", { textContent: `${st?.restarts ?? 0}` }),
      el("dt", { textContent: "Bitrate" }), el("dd", { textContent: kbps(st?.bitrateKbps) }),
      el("dt", { textContent: "Last error" }),
      el("dd", { className: "last-error", textContent: st?.lastError ?? "None" }),
      el("dt", { textContent: "Server" }), el("dd", {}, el("code", { textContent: spec.serverUrl ?? "" })),
    );
    if (st?.warnings?.length) {
      // The destination's platform's rules that the stream breaks, with where it says so.
      fields.append(el("dt", { textContent: "Platform warnings" }), el("dd", {},
        el("ul", { className: "warnings" }, ...st.warnings.map((w) => el("li", {},
          el("strong", { textContent: `${w.rule}: ` }), w.message,
          // A status is data anyone who may write it chose: only an https link.
          /^https:\/\//.test(w.source ?? "")
            ? el("span", {}, " (", el("a", { href: w.source, rel: "noreferrer", target: "_blank",
                textContent: "the platform's page" }), ")")
            : null)))));
    }
    card.body.replaceChildren(fields);
  }

  function renderCards(d) {
    const list = $("destinations");
    const byName = new Map(d.status.restreams.map((r) => [r.name, r]));
    const seen = new Set();
    for (const spec of d.restreams) {
      seen.add(spec.name);
      let card = cards.get(spec.name);
      if (!card) {
        const li = el("li");
        li.dataset.destination = spec.name;
        const body = el("div");
        // Another script's (changes.js): kept across renders, so that what it shows
        // there survives a status update.
        const actions = el("div", { className: "card-actions" });
        li.append(el("h3", { textContent: spec.name }), body, actions);
        card = { li, body, actions, spec: "" };
        cards.set(spec.name, card);
      }
      list.append(card.li); // in the spec's order
      fillCard(card, spec, byName.get(spec.name));
      const specText = JSON.stringify(spec);
      if (card.spec !== specText) {
        card.spec = specText;
        if (changes) changes.mountCard(card.li, { namespace, name, restream: spec });
      }
    }
    for (const [key, card] of cards) {
      if (!seen.has(key)) {
        card.li.remove();
        cards.delete(key);
      }
    }
    $("no-destinations").hidden = d.restreams.length !== 0;
  }

  function renderConditions(d) {
    $("conditions").replaceChildren(...d.status.conditions.map((c) => {
      const fine = c.status === "True" ? "fine" : "";
      return el("li", {},
        el("strong", { className: fine, textContent: `${c.type} ${c.status}` }),
        c.reason ? ` (${c.reason})` : "",
        c.message ? el("span", { className: "message", textContent: c.message }) : null);
    }));
  }

  // ---- plot -------------------------------------------------------------------------
  // A small SVG renderer rather than a charting library: a few dozen lines, no npm
  // package to vet, pin and ship, and nothing a Content-Security-Policy without inline
  // styles or eval would refuse (attributes only, set through the DOM).

  const samples = []; // {t, values: {series: kbps or null}}
  const COLOURS = ["#0b5cad", "#1b5e20", "#8e24aa", "#a04000", "#00695c", "#ad1457", "#37474f"];
  const SVG = "http://www.w3.org/2000/svg";

  function latestValues() {
    if (!current) return {};
    const values = { [INGEST]: current.status.broadcasting ? current.status.ingest.bitrateKbps ?? null : null };
    const live = new Map(current.status.restreams.map((r) => [r.name, r]));
    for (const r of current.restreams) values[r.name] = live.get(r.name)?.bitrateKbps ?? null;
    return values;
  }

  function sample() {
    if (!current) return;
    samples.push({ t: Date.now(), values: latestValues() });
    if (samples.length > MAX_SAMPLES) samples.shift();
    drawPlot();
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  function drawPlot() {
    const W = 640, H = 200, PAD = 40;
    const series = [INGEST, ...(current?.restreams ?? []).map((r) => r.name)];
    const values = samples.flatMap((s) => Object.values(s.values)).filter((v) => typeof v === "number");
    const top = Math.max(1000, ...values) * 1.1;
    const t0 = samples[0]?.t ?? Date.now();
    const span = Math.max(60_000, (samples.at(-1)?.t ?? t0) - t0);
    const x = (t) => PAD + ((t - t0) / span) * (W - PAD - 10);
    const y = (v) => H - 20 - (v / top) * (H - 30);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", "aria-hidden": "true", focusable: "false" });
    root.append(svg("line", { x1: PAD, y1: H - 20, x2: W - 10, y2: H - 20, class: "axis" }));
    root.append(svg("line", { x1: PAD, y1: 10, x2: PAD, y2: H - 20, class: "axis" }));
    const labels = [
      [2, 20, `${Math.round(top)}`], [2, 34, "kbit/s"], [2, H - 20, "0"],
      [PAD, H - 4, new Date(t0).toLocaleTimeString()], [W - 70, H - 4, "now"],
    ];
    for (const [lx, ly, text] of labels) {
      const label = svg("text", { x: lx, y: ly, class: "axis-label" });
      label.textContent = text;
      root.append(label);
    }
    series.forEach((key, i) => {
      // A line breaks where a series had no value (not Live, no broadcast).
      let run = [];
      const flush = () => {
        if (run.length) root.append(svg("polyline", { points: run.join(" "), fill: "none",
          stroke: COLOURS[i % COLOURS.length], "stroke-width": 2 }));
        run = [];
      };
      for (const s of samples) {
        const v = s.values[key];
        if (typeof v === "number") run.push(`${x(s.t).toFixed(1)},${y(v).toFixed(1)}`);
        else flush();
      }
      flush();
    });
    const plot = $("plot");
    plot.replaceChildren(root);
    plot.dataset.points = `${samples.length}`;
    const latest = samples.at(-1)?.values ?? {};
    const words = series.map((k) => `${k}: ${typeof latest[k] === "number" ? `${latest[k]} kbit/s` : "none"}`);
    plot.setAttribute("aria-label", `Bitrates over time, kbit/s; latest: ${words.join("; ")}`);
    $("plot-legend").replaceChildren(...series.map((k, i) => {
      const swatch = el("span", { className: "swatch" });
      swatch.dataset.colour = `${i % COLOURS.length}`;
      return el("li", {}, swatch, k);
    }));
    $("plot-latest").tBodies[0].replaceChildren(...series.map((k) =>
      el("tr", {}, el("th", { scope: "row", textContent: k }),
        el("td", { textContent: typeof latest[k] === "number" ? `${latest[k]}` : "none" }))));
  }

  // ---- HLS preview ------------------------------------------------------------------

  let player = null; // an Hls instance, or "native"

  function renderPreview(d) {
    const section = $("preview-section");
    const video = $("preview");
    const message = $("preview-message");
    section.hidden = !d.hls;
    const playing = d.hls && d.status.broadcasting === true;
    if (!playing) {
      if (player && player !== "native") player.destroy();
      if (player) video.removeAttribute("src");
      player = null;
      message.textContent = d.hls ? "No broadcast: the preview starts when an encoder publishes." : "";
      return;
    }
    if (player) return;
    // hls.js is 600 KiB: fetched the first time a preview plays, not with every page.
    playerScript().then(() => {
      if (!player && current?.hls && current.status.broadcasting === true) startPreview();
    });
  }

  let loading = null;

  function playerScript() {
    const src = $("preview-section").dataset.player;
    if (window.Hls || !src) return Promise.resolve();
    loading ??= new Promise((resolve) => {
      const script = el("script", { src });
      script.onload = script.onerror = () => resolve();
      document.head.append(script);
    });
    return loading;
  }

  function startPreview() {
    const video = $("preview");
    const message = $("preview-message");
    const source = `${base}/hls/stream.m3u8`;
    if (window.Hls && window.Hls.isSupported()) {
      // No worker: it would run from a blob: URL, which the page's policy refuses.
      player = new window.Hls({ enableWorker: false });
      player.on(window.Hls.Events.ERROR, (_event, data) => {
        if (!data.fatal) return;
        const code = data.response?.code ? ` (${data.response.code})` : "";
        message.textContent = `Preview stopped: ${data.details}${code}.`;
      });
      player.loadSource(source);
      player.attachMedia(video);
      message.textContent = "";
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      player = "native";
      video.src = source;
      message.textContent = "";
    } else {
      message.textContent = "Preview unavailable: this console was installed without its HLS player (hls.js).";
    }
  }

  // ---- Events -----------------------------------------------------------------------

  function renderEvents() {
    const sorted = [...events.values()].sort((a, b) => (b.last ?? "").localeCompare(a.last ?? ""));
    $("events").replaceChildren(...sorted.map((e) => {
      const li = el("li", { className: e.type === "Warning" ? "warning" : "" });
      li.dataset.reason = e.reason;
      li.append(
        when(e.last), " ",
        el("strong", { textContent: `${e.type} ${e.reason}` }),
        e.count > 1 ? ` (${e.count} times)` : "",
        el("span", { className: "message", textContent: e.message }));
      return li;
    }));
    if (events.size) $("events-message").textContent = "";
  }

  // ---- the feed ---------------------------------------------------------------------

  function render(d) {
    current = d;
    renderIngest(d);
    renderCards(d);
    renderConditions(d);
    renderPreview(d);
    sample();
  }

  function mountChanges() {
    if (!window.RestreamChanges || changes) return;
    changes = window.RestreamChanges;
    changes.mountPage($("destination-actions"), { namespace, name });
  }

  function connect() {
    const source = new EventSource(`${base}/stream`);
    let failed = false;
    let seen = false;
    source.addEventListener("detail", (e) => {
      failed = false;
      seen = true;
      render(JSON.parse(e.data));
      connection.textContent = "Live: changes appear as the cluster reports them.";
    });
    source.addEventListener("deleted", () => {
      connection.textContent = `${name} was deleted.`;
    });
    source.addEventListener("event", (e) => {
      const ev = JSON.parse(e.data);
      events.set(ev.uid, ev);
      renderEvents();
    });
    source.addEventListener("synced", () => {
      if (!seen) connection.textContent = `No LiveStream ${name} in namespace ${namespace} (or not one you may read).`;
      if (!events.size && !$("events-message").textContent) $("events-message").textContent = "No Events.";
    });
    source.addEventListener("events-failure", (e) => {
      $("events-message").textContent = JSON.parse(e.data).message;
    });
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

  $("reveal-key").addEventListener("click", revealKey);
  $("hide-key").addEventListener("click", hideKey);
  $("copy-key").addEventListener("click", (e) => copy($("stream-key").textContent, e.currentTarget));
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", () => copy($(button.dataset.copy).textContent, button));
  }
  mountChanges();
  setInterval(() => {
    sample();
    refreshTimes();
  }, SAMPLE_MS);
  connect();
})();
