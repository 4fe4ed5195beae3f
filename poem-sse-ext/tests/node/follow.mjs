// Follows one stream with the `eventsource` package (WHATWG-compliant) and reports, one JSON
// line each, what a page would see: `open`, every event (the hub's own included), `error` with
// the readyState, and `closed` once the source gave up for good (a finished run's 204, say). Exits then, or
// after 60 s whatever happens. Usage: node follow.mjs <url>
import { EventSource } from 'eventsource';

const url = process.argv[2];
if (!url) {
  console.error('usage: node follow.mjs <url>');
  process.exit(2);
}
const started = Date.now();
const report = (line) => console.log(JSON.stringify({ t: Date.now() - started, ...line }));

const source = new EventSource(url);
source.addEventListener('open', () => report({ kind: 'open' }));
for (const type of ['message', 'sse-reset', 'sse-busy', 'sse-reauth', 'sse-end']) {
  source.addEventListener(type, (event) =>
    report({ kind: 'event', type, data: event.data, lastEventId: event.lastEventId }),
  );
}
source.addEventListener('error', (event) => {
  report({ kind: 'error', readyState: source.readyState, code: event.code ?? null });
  if (source.readyState === EventSource.CLOSED) {
    report({ kind: 'closed' });
    process.exit(0);
  }
});
// Also keeps node alive while the source waits to reconnect (its timer does not).
setTimeout(() => {
  report({ kind: 'timeout' });
  process.exit(3);
}, 60_000);
