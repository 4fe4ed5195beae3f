// The pages' forms: each posts JSON with fetch and says what the server answered, its own
// message when it refused.

import { refusal } from "./format.js";

const UNREACHABLE = "the server can not be reached; try again when it is back";

// POSTs `body` as JSON: `{ res }` once answered, `{ res: null }` when the server can not be
// reached.
async function postJson(url, body, headers = {}) {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });
    return { res };
  } catch (_) {
    return { res: null };
  }
}

// A notification to a feed: `{"event": "notification", "data": {"text": …}}`.
function postNotification(form, channel, status, refused, headers = () => ({})) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    status.textContent = "posting…";
    const body = { event: "notification", data: { text: form.elements.text.value } };
    const { res } = await postJson(`/api/channels/${encodeURIComponent(channel)}/events`, body, headers());
    if (!res) {
      status.textContent = `failed: ${UNREACHABLE}`;
    } else if (res.ok) {
      status.textContent = "posted";
      form.elements.text.value = "";
    } else {
      status.textContent = `${refused}: ${await refusal(res)}`;
    }
  });
}

// The form that starts a run; on success the page of the run.
function startRun(form, status) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const fields = new FormData(form);
    const body = {
      prompt: String(fields.get("prompt") || ""),
      tokens: Number(fields.get("tokens")) || undefined,
      rate: Number(fields.get("rate")) || undefined,
    };
    status.textContent = "starting…";
    const { res } = await postJson("/api/runs", body);
    if (!res) {
      status.textContent = UNREACHABLE;
    } else if (res.ok) {
      const answer = await res.json();
      location.assign(`/generate/${encodeURIComponent(answer.id)}`);
    } else {
      status.textContent = await refusal(res);
    }
  });
}

// Wires whichever of the forms the page has.
export function wireForms() {
  const byId = (id) => document.getElementById(id);
  const notify = byId("notify");
  if (notify) {
    const token = () => (notify.token.value ? { authorization: `Bearer ${notify.token.value}` } : {});
    postNotification(notify, "notifications", byId("notify-status"), "failed", token);
  }
  const me = byId("me-post");
  if (me) postNotification(me, me.dataset.postChannel, byId("me-status"), "refused");
  const run = byId("generate");
  if (run) startRun(run, byId("generate-status"));
}
