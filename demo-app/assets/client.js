// The demo's pages start here. Every stream goes through `sse.js` (connect at the rendered id,
// reconnect, reset → refetch and reconnect, stale marker); the rest is one concern per module:
// `widgets.js` draws, `charts.js` charts, `dashboard.js` reads a set on one stream shared by
// tabs (`tabs.js`), `forms.js` posts, `me.js` and `run.js` are the private feed and a run.
// `window.sseStatus()` reports every widget (the browser tests read it).

import { SetPage } from "./dashboard.js";
import { protocol } from "./format.js";
import { wireForms } from "./forms.js";
import { startMe } from "./me.js";
import { startRun } from "./run.js";
import { fetchState, LiveStream } from "./sse.js";
import { Widget } from "./widgets.js";

// Content-Security-Policy violations seen by this page (the browser tests read them).
const violations = [];
document.addEventListener("securitypolicyviolation", (e) => violations.push(`${e.violatedDirective} ${e.blockedURI}`));
window.cspViolations = () => violations.slice();

const page = document.body.dataset.page;
const initial = JSON.parse(document.getElementById("state").textContent);

// One stream per widget, each resumed from its channel's id in the page's state.
function widgetStreams() {
  const streams = [...document.querySelectorAll("[data-channel]")].map((el) => {
    const w = new Widget(el, initial.channels[el.dataset.channel]);
    const url = `/events/${encodeURIComponent(w.channel)}`;
    const conn = (s) => ({ state: s.state, reconnects: s.reconnects, staleSince: s.staleSince, protocol: protocol(url) });
    const stream = new LiveStream({
      url,
      lastId: w.lastId,
      on: Object.fromEntries(w.names.map((name) => [name, (e) => w.add(e.type, e.data, e.lastEventId)])),
      onReset: (reset) => { w.resets += 1; w.lastReset = reset.reason || "?"; },
      reload: async () => {
        w.load((await fetchState(page)).channels[w.channel]);
        return w.lastId;
      },
      onChange: (s) => w.showConn(conn(s)),
    });
    return { w, stream, conn };
  });
  window.sseStatus = () => streams.map(({ w, stream, conn }) => ({ ...w.status(), ...conn(stream) }));
  // Each widget's current EventSource (for tests and the console).
  window.sseEventSources = () => streams.map(({ stream }) => stream.es);
}

const grid = document.querySelector("[data-set]");
if (grid) {
  const set = new SetPage(grid, initial, page);
  window.sseStatus = () => set.status();
  // The page's one EventSource, for every widget (null in a tab that receives from another).
  window.sseEventSources = () => [set.es];
  window.sseSet = set;
} else if (page === "me") {
  startMe(initial);
} else if (initial.run) {
  startRun(initial.run);
} else if (initial.channels) {
  widgetStreams();
}
wireForms();

const nav = performance.getEntriesByType("navigation")[0];
document.getElementById("page-proto").textContent = (nav && nav.nextHopProtocol) || "?";
