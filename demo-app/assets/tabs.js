// Tabs of one page share one stream. The tab holding the Web Lock `sse-leader` connects; it
// posts what it receives on a BroadcastChannel, and the others render what it posts. When the
// leader closes, the lock passes to another tab, which resumes from the last cursor it was
// posted: exactly where the leader stopped. Without Web Locks or BroadcastChannel, every tab
// leads.

export class TabShare {
  // `name`: the BroadcastChannel's; `onLead()`: this tab now holds the stream;
  // `onMessage(msg)`: what another tab posted.
  constructor(name, { onLead, onMessage }) {
    this.role = "follower";
    this.bc = typeof BroadcastChannel === "function" ? new BroadcastChannel(name) : null;
    this.shared = Boolean(this.bc && navigator.locks);
    if (this.bc) this.bc.onmessage = (m) => onMessage(m.data);
    const lead = () => {
      this.role = "leader";
      onLead();
    };
    if (this.shared) {
      // Held until the tab closes: the promise never settles.
      navigator.locks.request("sse-leader", () => new Promise(lead));
    } else {
      queueMicrotask(lead);
    }
  }

  post(msg) {
    if (this.bc) this.bc.postMessage(msg);
  }

  // Posts `msg` every second until `done()` says it was answered (a follower's hello: a leader
  // elected after the first hello answers the next).
  repeat(msg, done) {
    const again = () => {
      if (done()) return;
      this.post(msg);
      setTimeout(again, 1000);
    };
    again();
  }
}
