// The page of a run (`/generate/{id}`): its prompt, the text the server rendered and the id it
// corresponds to, then live through `sse.js`. When the run ends the server ends the stream; the
// EventSource reconnects once with the end's id, gets 204, and stays closed.
// `window.runStatus()` reports what the page holds (the browser tests read it).

import { shortId, showId } from "./format.js";
import { LiveStream } from "./sse.js";

export function startRun(run) {
  const byId = (id) => document.getElementById(id);
  const stop = byId("run-stop");
  let text = run.text;
  let status = run.end ? run.end.reason : "running";
  let events = 0;
  let resets = 0;
  let ends = 0;
  let stream = null;

  const show = () => {
    byId("run-text").textContent = text;
    showId(byId("run-last-id"), stream ? stream.lastId : run.head);
    byId("run-status").textContent = status;
    byId("run-status").dataset.status = status.split(":")[0];
    stop.disabled = status !== "running";
  };
  show();

  stream = new LiveStream({
    url: run.events,
    lastId: run.head,
    on: {
      message: (e) => { text += e.data; events += 1; show(); },
      "sse-end": (e) => {
        const end = JSON.parse(e.data);
        status = end.reason + (end.message ? `: ${end.message}` : "");
        ends += 1;
        show();
      },
    },
    // The resume point was not this run's: the stream starts over from the beginning.
    onReset: () => { text = ""; resets += 1; },
    // A 204 ends the follow for good: nothing to open again.
    reopen: false,
    onChange: show,
  });

  stop.addEventListener("click", async () => {
    stop.disabled = true;
    const res = await fetch(`/api/runs/${encodeURIComponent(run.id)}/cancel`, { method: "POST" }).catch(() => null);
    if (!res || !res.ok) {
      status = `stop failed: ${res ? res.status : "the server can not be reached"}`;
      show();
    }
  });

  window.runStatus = () => ({
    id: run.id, text, status, lastId: stream.lastId, shortId: shortId(stream.lastId),
    events, resets, ends, readyState: stream.es ? stream.es.readyState : 2,
  });
}
