// The dashboard: every widget on ONE stream, `/events?channels=<set>&lastEventId=<cursor>`,
// resumed from the set cursor the page was rendered at. Each event's type is `<channel>` or
// `<channel>:<name>`, each id a cursor resuming every channel. Tabs of the page share the stream
// (`tabs.js`): the leader posts every event, and a snapshot of every widget when asked.

import { fetchState, explainReset, LiveStream } from "./sse.js";
import { TabShare } from "./tabs.js";
import { protocol } from "./format.js";
import { Widget } from "./widgets.js";

export class SetPage {
  constructor(grid, state, page) {
    this.page = page;
    this.set = grid.dataset.set;
    this.widgets = new Map();
    this.byType = new Map();
    for (const el of grid.querySelectorAll("[data-channel]")) {
      const w = new Widget(el, state.channels[el.dataset.channel]);
      this.widgets.set(w.channel, w);
      for (const n of w.names) this.byType.set(n === "message" ? w.channel : `${w.channel}:${n}`, w);
    }
    this.cursor = state.cursor || "";
    this.stream = null;
    this.state = "connecting";
    this.wasLive = false;
    this.staleSince = null;
    // A follower ignores posted events until the leader's snapshot says where it stands.
    this.synced = false;
    this.tabs = new TabShare(`sse-set:${this.set}`, { onLead: () => this.lead(), onMessage: (m) => this.onPost(m) });
    if (this.tabs.shared) {
      this.tabs.repeat({ kind: "hello" }, () => this.synced);
      this.show("following");
    }
  }

  get role() { return this.tabs.role; }
  get es() { return this.stream && this.stream.es; }

  lead() {
    this.synced = true;
    this.tabs.post({ kind: "snapshot", ...this.snapshot() });
    this.stream = new LiveStream({
      url: `/events?channels=${encodeURIComponent(this.set)}`,
      lastId: this.cursor,
      on: Object.fromEntries([...this.byType.keys()].map((type) => [type, (e) => this.onEvent(e)])),
      // The set sends one reset per channel; the first closes the stream, and every widget is
      // reloaded, so every widget counts it.
      onReset: (reset) => {
        for (const w of this.widgets.values()) { w.resets += 1; w.lastReset = reset.reason || "?"; }
      },
      reload: async () => {
        const state = await fetchState(this.page);
        for (const [c, w] of this.widgets) w.load(state.channels[c]);
        this.cursor = state.cursor;
        this.tabs.post({ kind: "snapshot", ...this.snapshot() });
        return state.cursor;
      },
      onChange: (s) => this.show(s.state),
    });
  }

  onEvent(e) {
    this.dispatch(e.type, e.data, e.lastEventId);
    this.tabs.post({ kind: "event", type: e.type, data: e.data, id: e.lastEventId });
  }

  dispatch(type, data, id) {
    this.cursor = id;
    const w = this.byType.get(type);
    if (w) w.add(type.slice(w.channel.length + 1) || "message", data, id);
  }

  // The leader's posts to followers, and the followers' hello to the leader.
  onPost(msg) {
    if (this.role === "leader") {
      if (msg.kind === "hello") this.tabs.post({ kind: "snapshot", ...this.snapshot() });
      return;
    }
    const live = (state) => (state === "open" ? "following" : state);
    if (msg.kind === "snapshot") {
      this.cursor = msg.cursor;
      for (const [channel, s] of Object.entries(msg.channels)) {
        const w = this.widgets.get(channel);
        if (!w) continue;
        if (s.resets > w.resets) explainReset(s.lastReset);
        w.load(s);
        w.resets = s.resets;
        w.lastReset = s.lastReset;
      }
      this.synced = true;
      this.show(live(msg.state));
    } else if (msg.kind === "event" && this.synced) {
      this.dispatch(msg.type, msg.data, msg.id);
      this.show("following");
    } else if (msg.kind === "state" && this.synced) {
      this.show(live(msg.state));
    }
  }

  snapshot() {
    const channels = {};
    for (const [c, w] of this.widgets) {
      channels[c] = { id: w.lastId, items: w.items, resets: w.resets, lastReset: w.lastReset };
    }
    return { cursor: this.cursor, state: this.state, channels };
  }

  // Stale from the moment the page stops being live (open, or following a live leader).
  show(state) {
    const live = state === "open" || state === "following";
    if (live) this.wasLive = true;
    this.staleSince = live || !this.wasLive ? null : this.staleSince || Date.now();
    if (this.role === "leader" && state !== this.state) this.tabs.post({ kind: "state", state });
    this.state = state;
    const role = document.getElementById("set-role");
    if (role) role.textContent = `this tab ${this.role === "leader" ? "holds the stream" : "receives from the tab that does"}`;
    const conn = this.conn();
    for (const w of this.widgets.values()) w.showConn(conn);
  }

  conn() {
    return {
      state: this.state, reconnects: this.stream ? this.stream.reconnects : 0,
      staleSince: this.staleSince, protocol: protocol(this.role === "leader" ? "/events?" : "/"),
    };
  }

  status() {
    const conn = this.conn();
    return [...this.widgets.values()].map((w) => ({
      ...w.status(), state: this.state, role: this.role, reconnects: conn.reconnects,
      cursor: this.cursor, protocol: conn.protocol, staleSince: this.staleSince,
    }));
  }
}
