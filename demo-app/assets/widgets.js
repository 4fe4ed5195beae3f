// A widget: one channel's items (the state the page was rendered with, then what the stream
// brings), drawn by its kind (`data-kind`), with a footer that says how its stream is doing.

import { Chart } from "./charts.js";
import { clock, num, parse, showId, staleText, timeOf } from "./format.js";

export class Widget {
  constructor(el, state) {
    this.el = el;
    this.channel = el.dataset.channel;
    this.kind = el.dataset.kind;
    this.names = (el.dataset.events || "message").split(" ");
    this.keep = Number(el.dataset.keep) || 60;
    this.chart = null;
    this.resets = 0;
    this.lastReset = "";
    this.events = 0;
    this.load(state);
  }

  // Its channel's part of a page state: `{ id, items }`.
  load(state) {
    this.items = (state && state.items) || [];
    this.lastId = (state && state.id) || "";
    this.render();
  }

  // An event of its channel: `name` as the channel publishes it, `data` as it came.
  add(name, data, id) {
    this.events += 1;
    this.lastId = id;
    this.items.push({ id, event: name, data: parse(data) });
    if (this.items.length > this.keep) this.items.splice(0, this.items.length - this.keep);
    this.render();
  }

  render() {
    RENDER[this.kind](this);
  }

  chartOf(scales) {
    if (!this.chart) this.chart = new Chart(this.el.querySelector(".chart"), scales, Number(this.el.dataset.window) || 120);
    return this.chart;
  }

  // The footer (`conn.html`): `conn` is `{ state, reconnects, staleSince, protocol }`.
  showConn(conn) {
    const q = (sel) => this.el.querySelector(sel);
    q(".state").textContent = conn.state;
    q(".state").dataset.state = conn.state;
    q(".reconnects").textContent = conn.reconnects;
    q(".resets").textContent = this.resets;
    q(".reset-reason").textContent = this.lastReset ? ` (${this.lastReset})` : "";
    showId(q(".last-id"), this.lastId);
    q(".proto").textContent = conn.protocol;
    q(".stale").textContent = staleText(conn.staleSince);
  }

  status() {
    return {
      channel: this.channel, resets: this.resets, lastReset: this.lastReset, lastId: this.lastId,
      events: this.events, items: this.items.length, chart: this.chart ? this.chart.status() : null,
    };
  }
}

// The items that carry their time, as x values and items.
function timed(items) {
  const rows = items.map((item) => [timeOf(item), item]).filter(([t]) => t !== null);
  return [rows.map(([t]) => t), rows.map(([, item]) => item)];
}

const RENDER = {
  chart(w) {
    const last = w.items[w.items.length - 1];
    if (last) w.el.querySelector(".value").textContent = last.data.text;
    const [xs, rows] = timed(w.items);
    const values = rows.map((item) => (Array.isArray(item.data.v) ? item.data.v : []));
    const names = w.el.dataset.series ? w.el.dataset.series.split("|") : [];
    const width = Math.max(names.length, ...values.map((v) => v.length));
    const series = Array.from({ length: width }, (_, i) => ({
      label: names[i] || `core ${i}`, scale: "y", values: values.map((v) => num(v[i])),
    }));
    w.chartOf([{ key: "y", unit: w.el.dataset.unit || "", max: Number(w.el.dataset.max) || 0 }]).draw(xs, series);
  },
  feed(w) {
    renderFeed(w.el.querySelector(".items"), w.items);
  },
  metrics(w) {
    const last = w.items[w.items.length - 1];
    if (!last) return;
    for (const b of w.el.querySelectorAll("[data-key]")) b.textContent = last.data[b.dataset.key];
    const [xs, rows] = timed(w.items);
    // Two scales: a rate is not a count; each has its own axis.
    w.chartOf([{ key: "rate", unit: "/s", max: 0 }, { key: "streams", unit: "", max: 0 }]).draw(xs, [
      { label: "events / s", scale: "rate", values: rows.map((item) => num(item.data.events_per_sec)) },
      { label: "open streams", scale: "streams", values: rows.map((item) => num(item.data.open_streams)) },
    ]);
  },
  channels(w) {
    const last = w.items[w.items.length - 1];
    if (!last) return;
    w.el.querySelector("tbody").replaceChildren(...(last.data.rows || []).map(channelRow));
    const more = last.data.more || 0;
    w.el.querySelector(".more").textContent = more === 0 ? "" : `and ${more} more channel${more === 1 ? "" : "s"}`;
  },
};

// A row of the busiest channels: the name may break after a dot only, the head id is short.
function channelRow(c) {
  const tr = document.createElement("tr");
  const name = document.createElement("td");
  c.name.split(".").forEach((part, i) => {
    if (i > 0) name.append(".", document.createElement("wbr"));
    name.append(part);
  });
  tr.append(name);
  for (const v of [c.open_streams, c.published]) {
    const td = document.createElement("td");
    td.textContent = v;
    tr.append(td);
  }
  const head = document.createElement("td");
  const code = document.createElement("code");
  showId(code, c.head);
  head.append(code);
  tr.append(head);
  return tr;
}

// A feed, newest first. Each entry keeps the number it came with (the oldest on load is 1), so
// an arrival renumbers nothing; the list makes room for the widest number. An entry with a
// time (a notification object's `at`) reads `14:30:05 - text`.
export function renderFeed(list, items) {
  let n = 0;
  for (const item of items) n = item.n = item.n || n + 1;
  list.dataset.digits = String(n).length;
  list.replaceChildren(...items.slice().reverse().map((item) => {
    const li = document.createElement("li");
    const d = item.data;
    const text = typeof d === "string" ? d : (d && typeof d.text === "string" ? d.text : JSON.stringify(d));
    const at = typeof d === "object" && d && typeof d.text === "string" ? timeOf(item) : null;
    li.textContent = at === null ? text : `${clock(at)} - ${text}`;
    if (at !== null) li.dataset.at = d.at;
    li.dataset.id = item.id;
    li.value = item.n;
    return li;
  }));
}
