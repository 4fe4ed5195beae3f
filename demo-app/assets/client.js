// The demo's client: one EventSource per widget, resumed from the id its state was rendered at.
// No dependencies. `window.sseStatus()` reports every widget (the browser test reads it).
(() => {
  "use strict";
  const page = document.body.dataset.page;
  const initial = JSON.parse(document.getElementById("state").textContent);
  const COLORS = ["#2f80ed", "#eb5757", "#27ae60", "#f2994a", "#9b51e0", "#56ccf2", "#bb6bd9", "#6fcf97"];
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

  // Inline SVG polylines, one per series, of the last `points` items.
  function drawChart(svg, series, max) {
    const n = Math.max(...series.map((s) => s.length), 2);
    const top = max || Math.max(1, ...series.flat()) * 1.15;
    svg.innerHTML = series.map((values, i) => {
      const pts = values.map((v, x) =>
        `${((x + n - values.length) / (n - 1) * 300).toFixed(1)},${(80 - Math.min(v, top) / top * 78).toFixed(1)}`);
      return `<polyline fill="none" stroke-width="1.6" stroke="${COLORS[i % COLORS.length]}" points="${pts.join(" ")}"/>`;
    }).join("");
  }

  function seriesOf(items, key) {
    const rows = items.map((item) => (key ? [item.data[key]] : item.data.v) || []);
    const width = Math.max(0, ...rows.map((r) => r.length));
    return Array.from({ length: width }, (_, i) => rows.map((r) => Number(r[i]) || 0));
  }

  const renderers = {
    chart(el, items) {
      const last = items[items.length - 1];
      if (last) el.querySelector(".value").textContent = last.data.text;
      drawChart(el.querySelector(".chart"), seriesOf(items), Number(el.dataset.max) || 0);
    },
    feed(el, items) {
      const list = el.querySelector(".items");
      list.replaceChildren(...items.slice().reverse().map((item) => {
        const li = document.createElement("li");
        const d = item.data;
        li.textContent = typeof d === "string" ? d : (d && typeof d.text === "string" ? d.text : JSON.stringify(d));
        li.dataset.id = item.id;
        return li;
      }));
    },
    metrics(el, items) {
      const last = items[items.length - 1];
      if (!last) return;
      for (const b of el.querySelectorAll("[data-key]")) b.textContent = last.data[b.dataset.key];
      drawChart(el.querySelector(".chart"), [...seriesOf(items, "events_per_sec"), ...seriesOf(items, "open_streams")], 0);
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
      const q = (sel) => this.el.querySelector(sel);
      q(".state").textContent = state;
      q(".state").dataset.state = state;
      q(".reconnects").textContent = this.reconnects;
      q(".resets").textContent = this.resets;
      q(".reset-reason").textContent = this.lastReset ? ` (${this.lastReset})` : "";
      q(".last-id").textContent = this.lastId || "–";
      q(".proto").textContent = protocol(this.url || "/events/");
    }

    status() {
      return {
        channel: this.channel, state: this.state, reconnects: this.reconnects, resets: this.resets,
        lastReset: this.lastReset, lastId: this.lastId, events: this.events, items: this.items.length,
        protocol: protocol(this.url),
      };
    }
  }

  for (const el of document.querySelectorAll("[data-channel]")) {
    streams.push(new Stream(el, initial.channels[el.dataset.channel]));
  }
  const nav = performance.getEntriesByType("navigation")[0];
  document.getElementById("page-proto").textContent = (nav && nav.nextHopProtocol) || "?";
  window.sseStatus = () => streams.map((s) => s.status());
  // Each widget's current EventSource (for tests and the console).
  window.sseEventSources = () => streams.map((s) => s.es);

  const form = document.getElementById("notify");
  if (form) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const status = document.getElementById("notify-status");
      const headers = { "content-type": "application/json" };
      if (form.token.value) headers.authorization = `Bearer ${form.token.value}`;
      const res = await fetch(`/api/channels/notifications/events`, {
        method: "POST", headers,
        body: JSON.stringify({ event: "notification", data: { text: form.text.value } }),
      }).catch((err) => ({ ok: false, status: String(err) }));
      status.textContent = res.ok ? "posted" : `failed: ${res.status}`;
      if (res.ok) form.text.value = "";
    });
  }
})();
