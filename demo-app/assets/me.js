// The /me page: one native EventSource on the user's private channel. On `sse-reauth` (the
// session's grant ended) it renews the cookie; EventSource then reconnects by itself with
// Last-Event-ID and misses nothing. A refused reconnect (401/403) closes it for good.
(() => {
  const feed = document.getElementById('me-feed');
  if (!feed) return;
  const list = feed.querySelector('.items');
  const conn = document.getElementById('me-conn');
  const channel = feed.dataset.meChannel;
  const seen = new Set([...list.children].map((li) => li.dataset.id));
  const url = '/events/' + encodeURIComponent(channel) + '?lastEventId=' + encodeURIComponent(feed.dataset.head);
  const source = new EventSource(url);
  // `delivered` counts every event the stream brought; `events` those shown (a repeat is not).
  window.meStatus = { reauths: 0, renewed: 0, events: 0, delivered: 0, state: 'connecting' };
  const show = (e) => {
    window.meStatus.delivered += 1;
    if (seen.has(e.lastEventId)) return;
    seen.add(e.lastEventId);
    let text = e.data;
    try { const v = JSON.parse(e.data); text = typeof v === 'string' ? v : (v && typeof v.text === 'string' ? v.text : e.data); } catch (_) { /* plain text */ }
    const li = document.createElement('li');
    li.dataset.id = e.lastEventId;
    li.textContent = text;
    list.prepend(li);
    window.meStatus.events += 1;
  };
  source.addEventListener('message', show);
  source.addEventListener('notification', show);
  // While the stream is down, the feed says since when it may be missing notes.
  const clock = (ms) => { const d = new Date(ms); return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':'); };
  let live = false;
  let staleSince = null;
  source.addEventListener('open', () => {
    live = true;
    staleSince = null;
    window.meStatus.state = 'open';
    conn.textContent = 'open';
  });
  source.addEventListener('error', () => {
    if (live && staleSince === null) staleSince = Date.now();
    window.meStatus.state = source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
    conn.textContent = window.meStatus.state + (staleSince === null ? '' : ' · stale since ' + clock(staleSince));
  });
  source.addEventListener('sse-reauth', () => {
    window.meStatus.reauths += 1;
    fetch('/session/renew', { method: 'POST', credentials: 'same-origin' }).then((r) => {
      if (r.ok) window.meStatus.renewed += 1; else location.assign('/login');
    });
  });
  const form = document.getElementById('me-post');
  const status = document.getElementById('me-status');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = form.elements.text.value;
    fetch('/api/channels/' + encodeURIComponent(form.dataset.postChannel) + '/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ event: 'notification', data: { text } }),
    }).then(async (r) => {
      if (r.ok) { status.textContent = 'posted'; form.reset(); return; }
      // The server's own message: its JSON `error`, or its text.
      const body = await r.text().catch(() => '');
      let message = body.trim();
      try { message = JSON.parse(body).error || message; } catch (_) { /* plain text */ }
      status.textContent = 'refused: ' + (message ? message + ' (' + r.status + ')' : r.status);
    }, () => { status.textContent = 'failed: the server can not be reached; try again when it is back'; });
  });
})();
