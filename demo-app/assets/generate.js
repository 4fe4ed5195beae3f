// The generate page: starts a run, and follows one from the text and id the server rendered.
// No dependencies. `window.runStatus()` reports what the page holds (the browser test reads it).
(() => {
  "use strict";
  const state = JSON.parse(document.getElementById("state").textContent);
  const form = document.getElementById("generate");
  const formStatus = document.getElementById("generate-status");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    const body = {
      prompt: String(fields.get("prompt") || ""),
      tokens: Number(fields.get("tokens")) || undefined,
      rate: Number(fields.get("rate")) || undefined,
    };
    formStatus.textContent = "starting…";
    try {
      const response = await fetch("/api/runs", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || response.statusText);
      location.assign("/generate/" + encodeURIComponent(answer.id));
    } catch (err) {
      formStatus.textContent = String(err.message || err);
    }
  });

  const run = state.run;
  if (!run) return;
  const textEl = document.getElementById("run-text");
  const statusEl = document.getElementById("run-status");
  const lastIdEl = document.getElementById("run-last-id");
  const stop = document.getElementById("run-stop");
  let text = run.text;
  let lastId = run.head;
  let status = run.end ? run.end.reason : "running";
  let events = 0;
  let resets = 0;
  let ends = 0;

  function show() {
    textEl.textContent = text;
    lastIdEl.textContent = lastId;
    statusEl.textContent = status;
    statusEl.dataset.status = status.split(":")[0];
    stop.disabled = status !== "running";
  }
  show();

  // The stream continues exactly after the rendered text. When the run ends, the server ends the
  // stream; the EventSource reconnects once with the end's id, gets 204, and stays closed.
  const source = new EventSource(run.events + "?lastEventId=" + encodeURIComponent(run.head));
  source.onmessage = (event) => {
    text += event.data;
    lastId = event.lastEventId;
    events += 1;
    show();
  };
  source.addEventListener("sse-reset", (event) => {
    // The resume point was not this run's: the stream starts over from the beginning.
    text = "";
    lastId = event.lastEventId;
    resets += 1;
    show();
  });
  source.addEventListener("sse-end", (event) => {
    const end = JSON.parse(event.data);
    status = end.reason + (end.message ? ": " + end.message : "");
    lastId = event.lastEventId;
    ends += 1;
    show();
  });

  stop.addEventListener("click", async () => {
    stop.disabled = true;
    const response = await fetch("/api/runs/" + encodeURIComponent(run.id) + "/cancel", { method: "POST" });
    if (!response.ok) {
      status = "stop failed: " + response.status;
      show();
    }
  });

  window.runStatus = () => ({
    id: run.id,
    text,
    status,
    lastId,
    events,
    resets,
    ends,
    readyState: source.readyState,
  });
})();
