// How the pages write times, ids, amounts and the server's refusals.

// JSON when the text is JSON, else the text.
export function parse(text) {
  try { return JSON.parse(text); } catch (_) { return text; }
}

// Clock time of a Unix time in seconds, in the browser's time zone: `14:30:05`.
export function clock(seconds) {
  const d = new Date(seconds * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

// When an item was taken or published (its data's `at`), in Unix seconds; null without one.
export function timeOf(item) {
  const at = item && item.data && typeof item.data === "object" ? Date.parse(item.data.at) : NaN;
  return Number.isFinite(at) ? at / 1000 : null;
}

// What a footer says while its data may be out of date.
export function staleText(since) {
  return since ? `stale since ${clock(since / 1000)}` : "";
}

// An id short enough for a footer or a table cell (`s1.3…96.97`); the full id goes in a title.
export function shortId(id) {
  if (!id) return "–";
  return id.length <= 12 ? id : `${id.slice(0, 4)}…${id.slice(-6)}`;
}

// Writes `id` short into `el`, the full id on hover and to assistive technology.
export function showId(el, id) {
  el.textContent = shortId(id);
  el.title = id || "";
}

const BYTES = ["KiB/s", "MiB/s", "GiB/s", "TiB/s"];

// A short number with its unit: `40 %`, `1.5k /s`, and byte rates in the unit that reads best
// (`48.8 MiB/s`, not `50k KiB/s`).
export function amount(v, unit) {
  if (v == null) return "";
  if (unit === BYTES[0]) {
    let i = 0;
    while (Math.abs(v) >= 1024 && i < BYTES.length - 1) { v /= 1024; i += 1; }
    return `${short(v)} ${BYTES[i]}`;
  }
  const a = Math.abs(v);
  const n = a >= 1e6 ? `${short(v / 1e6)}M` : a >= 1e3 ? `${short(v / 1e3)}k` : short(v);
  return unit ? `${n} ${unit}` : n;
}

// The labels of one axis, all in the unit of the largest (`0 MiB/s`, `19.5 MiB/s`).
export function amounts(values, unit) {
  if (unit !== BYTES[0]) return values.map((v) => amount(v, unit));
  const top = Math.max(0, ...values.map((v) => Math.abs(v || 0)));
  let i = 0;
  while (top >= 1024 ** (i + 1) && i < BYTES.length - 1) i += 1;
  return values.map((v) => (v == null ? "" : `${short(v / 1024 ** i)} ${BYTES[i]}`));
}

function short(v) {
  const a = Math.abs(v);
  return `${+v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2)}`;
}

// A finite number, or null.
export function num(v) {
  const n = Number(v);
  return v == null || !Number.isFinite(n) ? null : n;
}

// What the server said when it refused a request: its JSON `error`, or its text; and the status.
export async function refusal(res) {
  const body = await res.text().catch(() => "");
  let message = body.trim();
  try { message = JSON.parse(body).error || message; } catch (_) { /* plain text */ }
  return message ? `${message} (${res.status})` : `${res.status} ${res.statusText}`.trim();
}

// The protocol the browser negotiated: from the newest resource entry for `url` (an entry
// appears once a request has finished), else from the page's own navigation.
export function protocol(url) {
  const resource = performance.getEntriesByType("resource")
    .filter((e) => e.name.includes(url) && e.nextHopProtocol).pop();
  const nav = performance.getEntriesByType("navigation")[0];
  return (resource && resource.nextHopProtocol) || (nav && nav.nextHopProtocol) || "?";
}
