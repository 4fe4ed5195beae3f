// The /me page: the signed-in user's private channel, through `sse.js`. On `sse-reauth` (the
// session's grant ended, and the stream with it) it renews the cookie; the browser then
// reconnects by itself with Last-Event-ID and misses nothing. A refused reconnect (401/403: the
// session is gone) stays closed.

import { parse, staleText } from "./format.js";
import { LiveStream } from "./sse.js";
import { renderFeed } from "./widgets.js";

export function startMe(state) {
  const list = document.querySelector("#me-feed .items");
  const conn = document.getElementById("me-conn");
  const keep = Number(list.dataset.keep) || 50;
  const items = state.items || [];
  const seen = new Set(items.map((item) => item.id));
  // `delivered` counts every event the stream brought; `events` those shown (a repeat is not).
  const status = { reauths: 0, renewed: 0, events: 0, delivered: 0, state: "connecting" };
  window.meStatus = status;
  const show = (e) => {
    status.delivered += 1;
    if (seen.has(e.lastEventId)) return;
    seen.add(e.lastEventId);
    items.push({ id: e.lastEventId, event: e.type, data: parse(e.data) });
    if (items.length > keep) items.splice(0, items.length - keep);
    renderFeed(list, items);
    status.events += 1;
  };
  const renew = async () => {
    status.reauths += 1;
    const res = await fetch("/session/renew", { method: "POST", credentials: "same-origin" }).catch(() => null);
    if (res && res.ok) status.renewed += 1;
    else location.assign("/login");
  };
  new LiveStream({
    url: `/events/${encodeURIComponent(state.channel)}`,
    lastId: state.id,
    on: { message: show, notification: show, "sse-reauth": renew },
    // The page is its state: a reset reloads it.
    reload: () => new Promise(() => location.reload()),
    reopen: false,
    onChange: (s) => {
      status.state = s.state === "connecting" && s.wasLive ? "reconnecting" : s.state;
      const stale = staleText(s.staleSince);
      conn.textContent = status.state + (stale ? ` · ${stale}` : "");
      conn.dataset.state = s.state;
    },
  });
}
