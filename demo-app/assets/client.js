// The demo's client. No dependencies. `window.sseStatus()` reports every widget (the browser
// tests read it).
//
// A page whose widgets sit in a `[data-set]` element (the dashboard) reads all its channels on
// ONE EventSource, `/events?channels=<set>&lastEventId=<the state's set cursor>`: each event's
// type is `<channel>` or `<channel>:<name>`, each id a cursor resuming every channel. Tabs of the
// page share that stream: the tab holding the Web Lock `sse-leader` connects and posts every
// event on a BroadcastChannel; the others render what it posts and keep its last cursor, so the
// tab that takes the lock when the leader closes resumes exactly where it stopped.
// Other pages: one EventSource per widget, resumed from the id its state was rendered at.
(() => {
  "use strict";
  const page = document.body.dataset.page;
  const initial = JSON.parse(document.getElementById("state").textContent);
  const COLORS = ["#2f80ed", "#eb5757", "#27ae60", "#f2994a", "#9b51e0", "#56ccf2", "#bb6bd9", "#6fcf97"];
  // Content-Security-Policy violations seen by this page (the browser tests read them).
  const violations = [];
  document.addEventListener("securitypolicyviolation", (e) => violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  window.cspViolations = () => violations.slice();
  const streams = [];

  // The protocol the browser negotiated: from the newest resource entry for `url` (an entry
  // appears once a request has finished), else from the page's own navigation.
  function protocol(url) {
    const resource = performance.getEntriesByType("resource")
      .filter((e) => e.name.includes(url) && e.nextHopProtocol).pop();
    const nav = performance.getEntriesByType("navigation")[0];
    return (resource && resource.nextHopProtocol) || (nav && nav.nextHopProtocol) || "?";
  }

  function parse(text) {
    try { return JSON.parse(text); } catch (_) { return text; }
  }

  // Clock time of a Unix time in seconds, in the browser's time zone: `14:30:05`.
  function clock(seconds) {
    const d = new Date(seconds * 1000);
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
  }

  // When an item was taken or published (its data's `at`), in Unix seconds; null without one.
  function timeOf(item) {
    const at = item && item.data && typeof item.data === "object" ? Date.parse(item.data.at) : NaN;
    return Number.isFinite(at) ? at / 1000 : null;
  }

  // What a widget's footer says while its data may be out of date.
  function staleText(since) {
    return since ? `stale since ${clock(since / 1000)}` : "";
  }

  // A tick label: a short number and the scale's unit (`1.5k KiB/s`, `40 %`).
  function amount(v, unit) {
    if (v == null) return "";
    const a = Math.abs(v);
    const n = a >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : a >= 1e3 ? `${+(v / 1e3).toFixed(1)}k` : `${+v.toFixed(2)}`;
    return unit ? `${n} ${unit}` : n;
  }

  // Width in CSS pixels of an axis label, in uPlot's axis font.
  const measure = document.createElement("canvas").getContext("2d");
  function textWidth(text) {
    measure.font = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif';
    return Math.ceil(measure.measureText(String(text)).width);
  }

  // A time chart (uPlot): the last `window` seconds ending now, whatever the points; one y axis
  // per scale, with its unit; a legend when it draws more than one line. Every chart slides
  // with the clock, so a widget that stopped receiving shows its points moving away.
  const charts = new Set();
  class Chart {
    // `scales`: [{ key, unit, max }], the first on the left, a second on the right.
    constructor(box, scales, window) {
      this.box = box;
      this.scales = scales;
      this.window = window;
      this.u = null;
      this.names = null;
      this.data = [[]];
      this.drawn = 0;
      this.ticks = {};
      this.seeded = null;
      charts.add(this);
      if (typeof ResizeObserver === "function") {
        new ResizeObserver(() => { if (this.u) this.u.setSize(this.size()); }).observe(box);
      }
    }

    size() {
      return { width: Math.max(150, this.box.clientWidth), height: 130 };
    }

    // `xs`: Unix seconds; `series`: [{ label, scale, values }], a value (or null) per x.
    draw(xs, series) {
      if (typeof uPlot !== "function") return;
      const names = series.map((s) => `${s.scale}:${s.label}`).join("|");
      if (names !== this.names) this.build(series, names);
      this.data = [xs, ...series.map((s) => s.values)];
      if (this.seeded === null) this.seeded = xs.length;
      this.refresh();
    }

    refresh() {
      if (!this.u) return;
      this.u.setData(this.data);
      this.drawn = Date.now();
    }

    build(series, names) {
      if (this.u) this.u.destroy();
      this.names = names;
      // The labels drawn on each axis, kept for `sseStatus()` (the canvas holds only pixels).
      const labels = (key, format) => (u, splits) => {
        const shown = splits.map(format);
        this.ticks[key] = shown;
        return shown;
      };
      const axis = { stroke: "#6b7280", grid: { stroke: "#eef0f3", width: 1 }, ticks: { stroke: "#e3e6ea", width: 1 } };
      const scales = {
        x: { time: true, range: () => { const now = Date.now() / 1000; return [now - this.window, now]; } },
      };
      const axes = [{ ...axis, scale: "x", space: 70, values: labels("x", clock) }];
      this.scales.forEach((s, i) => {
        scales[s.key] = { range: (u, lo, hi) => [0, s.max || (hi > 0 ? hi * 1.15 : 1)] };
        axes.push({
          ...axis, scale: s.key, side: i === 0 ? 3 : 1, space: 24,
          grid: { ...axis.grid, show: i === 0 },
          values: labels(s.key, (v) => amount(v, s.unit)),
          size: (u, values) => 16 + Math.max(24, ...(values || []).map(textWidth)),
        });
      });
      const multi = series.length > 1 && series.length <= COLORS.length;
      // The server's words for the lines ("one line per core") only where no legend names them.
      const note = this.box.parentElement.querySelector(".legend");
      if (note) note.hidden = multi;
      this.u = new uPlot({
        ...this.size(), scales, axes,
        series: [
          { label: "time", value: (u, v) => (v == null ? "–" : clock(v)) },
          ...series.map((s, i) => ({
            label: s.label, scale: s.scale, stroke: COLORS[i % COLORS.length], width: 1.5,
            points: { show: false },
            value: (u, v) => amount(v, (this.scales.find((c) => c.key === s.scale) || {}).unit),
          })),
        ],
        legend: { show: multi, live: false },
        cursor: { drag: { x: false, y: false } },
      }, [[], ...series.map(() => [])], this.box);
    }

    status() {
      const x = this.u && this.u.scales.x;
      return {
        xLabels: this.ticks.x || [],
        yLabels: Object.fromEntries(this.scales.map((s) => [s.key, this.ticks[s.key] || []])),
        // Without live values the legend has a row per line, none for the time.
        legend: [...this.box.querySelectorAll(".u-legend .u-series th")].map((th) => th.textContent),
        window: x ? Math.round(x.max - x.min) : 0,
        points: this.data[0].length,
        seeded: this.seeded,
      };
    }
  }
  // Slide every chart with the clock, also when no event comes.
  setInterval(() => {
    for (const c of charts) if (Date.now() - c.drawn > 900) c.refresh();
  }, 1000);

  const chartOf = new WeakMap();
  function chart(el, scales) {
    if (!chartOf.has(el)) {
      chartOf.set(el, new Chart(el.querySelector(".chart"), scales, Number(el.dataset.window) || 120));
    }
    return chartOf.get(el);
  }

  // The items that carry their time, as x values and items.
  function timed(items) {
    const rows = items.map((item) => [timeOf(item), item]).filter(([t]) => t !== null);
    return [rows.map(([t]) => t), rows.map(([, item]) => item)];
  }

  function num(v) {
    const n = Number(v);
    return v == null || !Number.isFinite(n) ? null : n;
  }

  const renderers = {
    chart(el, items) {
      const last = items[items.length - 1];
      if (last) el.querySelector(".value").textContent = last.data.text;
      const [xs, rows] = timed(items);
      const values = rows.map((item) => (Array.isArray(item.data.v) ? item.data.v : []));
      const names = el.dataset.series ? el.dataset.series.split("|") : [];
      const width = Math.max(names.length, ...values.map((v) => v.length));
      const series = Array.from({ length: width }, (_, i) => ({
        label: names[i] || `core ${i}`, scale: "y", values: values.map((v) => num(v[i])),
      }));
      chart(el, [{ key: "y", unit: el.dataset.unit || "", max: Number(el.dataset.max) || 0 }]).draw(xs, series);
    },
    // Newest first; each entry keeps the number it came with (the oldest on load is 1), so an
    // arrival renumbers nothing, and the list makes room for the widest number.
    feed(el, items) {
      let n = 0;
      for (const item of items) n = item.n = item.n || n + 1;
      const list = el.querySelector(".items");
      list.dataset.digits = String(n).length;
      list.replaceChildren(...items.slice().reverse().map((item) => {
        const li = document.createElement("li");
        const d = item.data;
        const text = typeof d === "string" ? d : (d && typeof d.text === "string" ? d.text : JSON.stringify(d));
        const at = typeof d === "object" && d && typeof d.text === "string" ? timeOf(item) : null;
        li.textContent = at === null ? text : `${clock(at)} - ${text}`;
        if (at !== null) li.dataset.at = d.at;
        li.dataset.id = item.id;
        li.value = item.n;
        return li;
      }));
    },
    metrics(el, items) {
      const last = items[items.length - 1];
      if (!last) return;
      for (const b of el.querySelectorAll("[data-key]")) b.textContent = last.data[b.dataset.key];
      const [xs, rows] = timed(items);
      // Two scales: a rate is not a count; each has its own axis.
      chart(el, [{ key: "rate", unit: "/s", max: 0 }, { key: "streams", unit: "", max: 0 }]).draw(xs, [
        { label: "events / s", scale: "rate", values: rows.map((item) => num(item.data.events_per_sec)) },
        { label: "open streams", scale: "streams", values: rows.map((item) => num(item.data.open_streams)) },
      ]);
    },
    channels(el, items) {
      const last = items[items.length - 1];
      if (!last) return;
      const body = el.querySelector("tbody");
      body.replaceChildren(...(last.data.rows || []).map((c) => {
        const tr = document.createElement("tr");
        for (const v of [c.name, c.open_streams, c.published, c.head]) {
          const td = document.createElement("td");
          td.textContent = v == null ? "–" : v;
          tr.append(td);
        }
        return tr;
      }));
      const more = last.data.more || 0;
      el.querySelector(".more").textContent =
        more === 0 ? "" : `and ${more} more channel${more === 1 ? "" : "s"}`;
    },
  };

  // Since when (ms) a widget's data is stale after it shows `state`: from the moment a stream
  // that was live stops being so (an error, a refusal, a reset) until it is live again.
  function staleAfter(widget, state) {
    if (state === "open" || state === "following") {
      widget.wasLive = true;
      return null;
    }
    return widget.wasLive ? widget.staleSince || Date.now() : null;
  }

  // Says on the page why its data started again: the reset's reason, and when.
  const RESET_WHY = {
    epoch: "The server restarted (or its store was reset): the history this page showed is gone, and the charts start again from then.",
    evicted: "This page fell behind the history the server keeps: it reloaded the newest data.",
    unknown: "The server did not know where this page stood: it reloaded the newest data.",
  };
  function explainReset(reason) {
    const note = document.getElementById("reset-note");
    if (!note) return;
    note.textContent = `${clock(Date.now() / 1000)} · ${RESET_WHY[reason] || RESET_WHY.unknown}`;
    note.hidden = false;
  }

  class Stream {
    constructor(el, state) {
      this.el = el;
      this.channel = el.dataset.channel;
      this.kind = el.dataset.kind;
      this.names = (el.dataset.events || "message").split(" ");
      this.keep = Number(el.dataset.keep) || 60;
      this.reconnects = 0;
      this.resets = 0;
      this.lastReset = "";
      this.events = 0;
      this.state = "connecting";
      this.load(state);
      this.connect();
    }

    load(state) {
      this.items = (state && state.items) || [];
      this.lastId = (state && state.id) || "";
      renderers[this.kind](this.el, this.items);
    }

    // One EventSource per widget, ever: the previous one is closed before a new one opens.
    connect() {
      if (this.es) this.es.close();
      this.url = `/events/${encodeURIComponent(this.channel)}`;
      const es = new EventSource(`${this.url}?lastEventId=${encodeURIComponent(this.lastId)}`);
      this.es = es;
      this.show("connecting");
      // A server event named `open` or `error` reaches these handlers too, as a MessageEvent
      // (the browser's own are plain Events): it says nothing about the connection.
      es.onopen = (e) => {
        if (!(e instanceof MessageEvent) && this.es === es) this.show("open");
      };
      es.onerror = (e) => {
        if (e instanceof MessageEvent || this.es !== es) return;
        if (es.readyState === EventSource.CONNECTING) {
          // The browser reconnects by itself, sending Last-Event-ID.
          this.reconnects += 1;
          this.show("connecting");
        } else if (es.readyState === EventSource.CLOSED) {
          // Refused (a 503 while the server shuts down, say): the browser gives up, we do not.
          this.reconnects += 1;
          this.show("closed");
          setTimeout(() => { if (this.es === es) this.connect(); }, 1000 + Math.random() * 1000);
        }
      };
      for (const name of this.names) es.addEventListener(name, (e) => this.onEvent(e));
      es.addEventListener("sse-reset", (e) => this.onReset(es, e));
    }

    onEvent(e) {
      this.events += 1;
      this.lastId = e.lastEventId;
      this.items.push({ id: e.lastEventId, event: e.type, data: parse(e.data) });
      if (this.items.length > this.keep) this.items.splice(0, this.items.length - this.keep);
      renderers[this.kind](this.el, this.items);
      this.show("open");
    }

    // The stream could not resume where we were (a restart, or we fell too far behind): our
    // state is stale. Refetch it with the id it is at, and resume after that id.
    async onReset(es, e) {
      es.close();
      this.resets += 1;
      this.lastReset = (parse(e.data) || {}).reason || "?";
      explainReset(this.lastReset);
      this.show("resetting");
      for (;;) {
        try {
          const res = await fetch(`/api/state/${page}`, { cache: "no-store" });
          if (!res.ok) throw new Error(`state: ${res.status}`);
          const state = await res.json();
          this.load(state.channels[this.channel]);
          break;
        } catch (_) {
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      this.connect();
    }

    show(state) {
      this.state = state;
      this.staleSince = staleAfter(this, state);
      const q = (sel) => this.el.querySelector(sel);
      q(".stale").textContent = staleText(this.staleSince);
      q(".state").textContent = state;
      q(".state").dataset.state = state;
      q(".reconnects").textContent = this.reconnects;
      q(".resets").textContent = this.resets;
      q(".reset-reason").textContent = this.lastReset ? ` (${this.lastReset})` : "";
      q(".last-id").textContent = this.lastId || "–";
      q(".proto").textContent = protocol(this.url || "/events/");
    }

    status() {
      const c = chartOf.get(this.el);
      return {
        channel: this.channel, state: this.state, reconnects: this.reconnects, resets: this.resets,
        lastReset: this.lastReset, lastId: this.lastId, events: this.events, items: this.items.length,
        protocol: protocol(this.url), staleSince: this.staleSince, chart: c ? c.status() : null,
      };
    }
  }

  // One widget of a set: renders its channel's items and its connection footer.
  class SetWidget {
    constructor(el, state) {
      this.el = el;
      this.channel = el.dataset.channel;
      this.kind = el.dataset.kind;
      this.names = (el.dataset.events || "message").split(" ");
      this.keep = Number(el.dataset.keep) || 60;
      this.resets = 0;
      this.lastReset = "";
      this.events = 0;
      this.load(state);
    }

    // The event types of this channel on the set's stream.
    types() {
      return this.names.map((n) => (n === "message" ? this.channel : `${this.channel}:${n}`));
    }

    load(state) {
      this.items = (state && state.items) || [];
      this.lastId = (state && state.id) || "";
      renderers[this.kind](this.el, this.items);
    }

    onEvent(type, data, id) {
      this.events += 1;
      this.lastId = id;
      const name = type.slice(this.channel.length + 1) || "message";
      this.items.push({ id, event: name, data: parse(data) });
      if (this.items.length > this.keep) this.items.splice(0, this.items.length - this.keep);
      renderers[this.kind](this.el, this.items);
    }
  }

  class SetClient {
    constructor(grid, state) {
      this.set = grid.dataset.set;
      this.widgets = new Map();
      for (const el of grid.querySelectorAll("[data-channel]")) {
        this.widgets.set(el.dataset.channel, new SetWidget(el, state.channels[el.dataset.channel]));
      }
      this.byType = new Map();
      for (const w of this.widgets.values()) for (const t of w.types()) this.byType.set(t, w);
      this.cursor = state.cursor || "";
      this.url = `/events?channels=${encodeURIComponent(this.set)}`;
      this.role = "follower";
      this.state = "connecting";
      this.reconnects = 0;
      this.es = null;
      // A follower ignores posted events until the leader's snapshot says where it stands.
      this.synced = false;
      this.bc = typeof BroadcastChannel === "function" ? new BroadcastChannel(`sse-set:${this.set}`) : null;
      if (this.bc) this.bc.onmessage = (m) => this.onPost(m.data);
      if (this.bc && navigator.locks) {
        // Held until the tab closes: the promise never settles.
        navigator.locks.request("sse-leader", () => new Promise(() => this.lead()));
        // Until the leader's snapshot arrives (a leader elected after this hello answers it too).
        const hello = () => { if (!this.synced) { this.post({ kind: "hello" }); setTimeout(hello, 1000); } };
        hello();
        this.show("following");
      } else {
        this.lead();
      }
    }

    lead() {
      this.role = "leader";
      this.synced = true;
      this.post({ kind: "snapshot", ...this.snapshot() });
      this.connect();
    }

    // The leader's messages to followers, and the followers' hello to the leader.
    onPost(msg) {
      if (this.role === "leader") {
        if (msg.kind === "hello") this.post({ kind: "snapshot", ...this.snapshot() });
        return;
      }
      if (msg.kind === "snapshot") {
        this.cursor = msg.cursor;
        for (const [channel, s] of Object.entries(msg.channels)) {
          const w = this.widgets.get(channel);
          if (w) { w.load(s); w.resets = s.resets; w.lastReset = s.lastReset; }
        }
        this.synced = true;
        this.show(msg.state === "open" ? "following" : msg.state);
      } else if (msg.kind === "event" && this.synced) {
        this.dispatch(msg.type, msg.data, msg.id);
        this.show("following");
      } else if (msg.kind === "state" && this.synced) {
        this.show(msg.state === "open" ? "following" : msg.state);
      }
    }

    post(msg) {
      if (this.bc) this.bc.postMessage(msg);
    }

    snapshot() {
      const channels = {};
      for (const [c, w] of this.widgets) {
        channels[c] = { id: w.lastId, items: w.items, resets: w.resets, lastReset: w.lastReset };
      }
      return { cursor: this.cursor, state: this.state, channels };
    }

    dispatch(type, data, id) {
      this.cursor = id;
      const w = this.byType.get(type);
      if (w) w.onEvent(type, data, id);
    }

    // One EventSource for the whole set, ever: the previous one is closed before a new one opens.
    connect() {
      if (this.es) this.es.close();
      const es = new EventSource(`${this.url}&lastEventId=${encodeURIComponent(this.cursor)}`);
      this.es = es;
      this.show("connecting");
      // A server event named `open` or `error` can not reach these handlers (set events are
      // prefixed by their channel), but a MessageEvent is still not the connection's.
      es.onopen = (e) => {
        if (!(e instanceof MessageEvent) && this.es === es) this.show("open");
      };
      es.onerror = (e) => {
        if (e instanceof MessageEvent || this.es !== es) return;
        this.reconnects += 1;
        if (es.readyState === EventSource.CONNECTING) {
          // The browser reconnects by itself, sending the last cursor as Last-Event-ID.
          this.show("connecting");
        } else if (es.readyState === EventSource.CLOSED) {
          this.show("closed");
          setTimeout(() => { if (this.es === es) this.connect(); }, 1000 + Math.random() * 1000);
        }
      };
      for (const type of this.byType.keys()) {
        es.addEventListener(type, (e) => {
          if (this.es !== es) return;
          this.dispatch(e.type, e.data, e.lastEventId);
          this.post({ kind: "event", type: e.type, data: e.data, id: e.lastEventId });
          this.show("open");
        });
      }
      es.addEventListener("sse-reset", (e) => this.onReset(es, e));
    }

    // A channel could not resume (a restart, or it fell too far behind): its state is stale.
    // Refetch the page's state, with the cursor it is at, and resume every channel from there.
    async onReset(es, e) {
      if (this.es !== es) return;
      es.close();
      this.es = null;
      // Every widget is reloaded below, so every widget counts the reset (the set sends one
      // per channel, and this one is the first).
      const reset = parse(e.data) || {};
      for (const w of this.widgets.values()) { w.resets += 1; w.lastReset = reset.reason || "?"; }
      explainReset(reset.reason);
      this.show("resetting");
      for (;;) {
        try {
          const res = await fetch(`/api/state/${page}`, { cache: "no-store" });
          if (!res.ok) throw new Error(`state: ${res.status}`);
          const state = await res.json();
          for (const [c, w] of this.widgets) w.load(state.channels[c]);
          this.cursor = state.cursor;
          break;
        } catch (_) {
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      this.post({ kind: "snapshot", ...this.snapshot() });
      this.connect();
    }

    show(state) {
      this.state = state;
      this.staleSince = staleAfter(this, state);
      if (this.role === "leader") this.post({ kind: "state", state });
      const role = document.getElementById("set-role");
      if (role) role.textContent = `this tab ${this.role === "leader" ? "holds the stream" : "receives from the tab that does"}`;
      const proto = protocol(this.role === "leader" ? "/events?" : "/");
      for (const w of this.widgets.values()) {
        const q = (sel) => w.el.querySelector(sel);
        q(".state").textContent = state;
        q(".state").dataset.state = state;
        q(".reconnects").textContent = this.reconnects;
        q(".resets").textContent = w.resets;
        q(".reset-reason").textContent = w.lastReset ? ` (${w.lastReset})` : "";
        q(".last-id").textContent = w.lastId || "–";
        q(".proto").textContent = proto;
        q(".stale").textContent = staleText(this.staleSince);
      }
    }

    status() {
      const proto = protocol(this.role === "leader" ? "/events?" : "/");
      return [...this.widgets.values()].map((w) => ({
        channel: w.channel, state: this.state, role: this.role, reconnects: this.reconnects,
        resets: w.resets, lastReset: w.lastReset, lastId: w.lastId, events: w.events,
        items: w.items.length, cursor: this.cursor, protocol: proto, staleSince: this.staleSince,
        chart: chartOf.has(w.el) ? chartOf.get(w.el).status() : null,
      }));
    }
  }

  const grid = document.querySelector("[data-set]");
  if (grid) {
    const client = new SetClient(grid, initial);
    window.sseStatus = () => client.status();
    // The page's one EventSource, for every widget (null in a tab that receives from another).
    window.sseEventSources = () => [client.es];
    window.sseSet = client;
  } else {
    for (const el of document.querySelectorAll("[data-channel]")) {
      streams.push(new Stream(el, initial.channels[el.dataset.channel]));
    }
    window.sseStatus = () => streams.map((s) => s.status());
    // Each widget's current EventSource (for tests and the console).
    window.sseEventSources = () => streams.map((s) => s.es);
  }
  const nav = performance.getEntriesByType("navigation")[0];
  document.getElementById("page-proto").textContent = (nav && nav.nextHopProtocol) || "?";

  // What the server said when it refused a request: its JSON `error`, or its text.
  async function refusal(res) {
    const body = await res.text().catch(() => "");
    let message = body.trim();
    try { message = JSON.parse(body).error || message; } catch (_) { /* plain text */ }
    return message ? `${message} (${res.status})` : `${res.status} ${res.statusText}`.trim();
  }

  const form = document.getElementById("notify");
  if (form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const status = document.getElementById("notify-status");
      const headers = { "content-type": "application/json" };
      if (form.token.value) headers.authorization = `Bearer ${form.token.value}`;
      status.textContent = "posting…";
      try {
        const res = await fetch(`/api/channels/notifications/events`, {
          method: "POST", headers,
          body: JSON.stringify({ event: "notification", data: { text: form.text.value } }),
        });
        status.textContent = res.ok ? "posted" : `failed: ${await refusal(res)}`;
        if (res.ok) form.text.value = "";
      } catch (_) {
        status.textContent = "failed: the server can not be reached; try again when it is back";
      }
    });
  }
})();
