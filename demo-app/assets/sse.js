// The pattern every page of the demo follows, and the one to copy into an app:
//
//   1. Connect at the id the page was rendered at: `?lastEventId=<id>` (a first EventSource can
//      not send the `Last-Event-ID` header), so nothing published after the render is missed.
//   2. Let the browser reconnect by itself: it sends `Last-Event-ID`, the server resumes exactly.
//   3. On `sse-reset` the page's data can not be continued (the server restarted, or the page
//      fell behind the history the server keeps): refetch the page's state, redraw it, and
//      reconnect at the state's id. The page says why its data started again.
//   4. While the stream is not live, the data is marked stale, with since when.
//
// A stream the browser gave up on (a refusal such as a 503) is opened again after 1–2 s.

import { clock, parse } from "./format.js";

export class LiveStream {
  // `url`: the stream, without its resume point. `lastId`: where the page's state stands.
  // `on`: `{ type: (event) => void }`, the events the page reads.
  // `reload(reset)`: refetches and redraws the page's state and resolves to its id; without it
  //   the stream goes on after a reset as the server continues it (a run starts over, say).
  // `onReset(reset)`: before the reload. `onChange(stream)`: after every change of `state`.
  // `reopen`: open again a stream the browser gave up on (default true).
  constructor({ url, lastId = "", on, reload = null, onReset = () => {}, onChange = () => {}, reopen = true }) {
    Object.assign(this, { url, lastId, on, reload, onReset, onChange, reopen });
    this.state = "connecting";
    this.reconnects = 0;
    this.resets = 0;
    this.lastReset = "";
    this.events = 0;
    this.wasLive = false;
    this.staleSince = null;
    this.es = null;
    this.connect();
  }

  // One EventSource per stream, ever: the previous one is closed before a new one opens.
  connect() {
    if (this.es) this.es.close();
    const sep = this.url.includes("?") ? "&" : "?";
    const es = new EventSource(`${this.url}${sep}lastEventId=${encodeURIComponent(this.lastId)}`);
    this.es = es;
    this.show("connecting");
    // A server event named `open` or `error` reaches these handlers too, as a MessageEvent (the
    // browser's own are plain Events): it says nothing about the connection.
    es.onopen = (e) => {
      if (!(e instanceof MessageEvent) && this.es === es) this.show("open");
    };
    es.onerror = (e) => {
      if (e instanceof MessageEvent || this.es !== es) return;
      this.reconnects += 1;
      if (es.readyState === EventSource.CONNECTING) {
        this.show("connecting"); // the browser reconnects by itself, with Last-Event-ID
      } else {
        this.show("closed");
        if (this.reopen) setTimeout(() => { if (this.es === es) this.connect(); }, 1000 + Math.random() * 1000);
      }
    };
    for (const [type, handler] of Object.entries(this.on)) {
      es.addEventListener(type, (e) => {
        if (this.es !== es) return;
        this.events += 1;
        if (e.lastEventId) this.lastId = e.lastEventId;
        handler(e);
        this.show("open");
      });
    }
    es.addEventListener("sse-reset", (e) => this.onResetEvent(es, e));
  }

  async onResetEvent(es, e) {
    if (this.es !== es) return;
    const reset = parse(e.data) || {};
    this.resets += 1;
    this.lastReset = reset.reason || "?";
    this.onReset(reset);
    if (!this.reload) {
      this.lastId = e.lastEventId;
      this.onChange(this);
      return;
    }
    es.close();
    this.es = null;
    this.show("resetting");
    explainReset(this.lastReset);
    this.lastId = await this.reload(reset);
    this.connect();
  }

  // Stale from the moment a stream that was live stops being so, until it is live again.
  show(state) {
    if (state === "open") this.wasLive = true;
    this.staleSince = state === "open" || !this.wasLive ? null : this.staleSince || Date.now();
    this.state = state;
    this.onChange(this);
  }
}

// The page's state as `/api/state/{page}` answers it, asked again every second until it comes.
export async function fetchState(page) {
  for (;;) {
    try {
      const res = await fetch(`/api/state/${encodeURIComponent(page)}`, { cache: "no-store" });
      if (res.ok) return await res.json();
    } catch (_) { /* the server is not back yet */ }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

const RESET_WHY = {
  epoch: "The server restarted (or its store was reset): the history this page showed is gone, and its charts and lists start again from then.",
  evicted: "This page fell behind the history the server keeps: it reloaded the newest data.",
  unknown: "The server did not know where this page stood: it reloaded the newest data.",
};

// Says above the page when and why its data started again.
export function explainReset(reason) {
  const note = document.getElementById("reset-note");
  if (!note) return;
  note.textContent = `${clock(Date.now() / 1000)} · ${RESET_WHY[reason] || RESET_WHY.unknown}`;
  note.hidden = false;
}
