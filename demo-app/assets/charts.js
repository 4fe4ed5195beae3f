// Time charts (uPlot, the classic script loaded before the modules): the last `window` seconds
// ending now, whatever the points; one y axis per scale, with its unit; a legend when a chart
// draws more than one line. Every chart slides with the clock, so a widget that stopped
// receiving shows its points moving away.

import { amount, amounts, clock } from "./format.js";

const COLORS = ["#2f80ed", "#eb5757", "#27ae60", "#f2994a", "#9b51e0", "#56ccf2", "#bb6bd9", "#6fcf97"];
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif';

// Width in CSS pixels of an axis label, in the axes' font.
const measure = document.createElement("canvas").getContext("2d");
function textWidth(text) {
  measure.font = FONT;
  return Math.ceil(measure.measureText(String(text)).width);
}

const charts = new Set();
// Slide every chart with the clock, also when no event comes.
setInterval(() => {
  for (const c of charts) if (Date.now() - c.drawn > 900) c.refresh();
}, 1000);

export class Chart {
  // `scales`: [{ key, unit, max }], the first on the left, a second on the right.
  constructor(box, scales, window) {
    Object.assign(this, { box, scales, window });
    this.u = null;
    this.names = null;
    this.data = [[]];
    this.drawn = 0;
    this.ticks = {};
    this.seeded = null;
    charts.add(this);
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(() => { if (this.u) this.u.setSize(this.size()); }).observe(box);
    }
  }

  size() {
    return { width: Math.max(150, this.box.clientWidth), height: 130 };
  }

  // `xs`: Unix seconds; `series`: [{ label, scale, values }], a value (or null) per x.
  draw(xs, series) {
    if (typeof uPlot !== "function") return;
    const names = series.map((s) => `${s.scale}:${s.label}`).join("|");
    if (names !== this.names) this.build(series, names);
    this.data = [xs, ...series.map((s) => s.values)];
    if (this.seeded === null) this.seeded = xs.length;
    this.refresh();
  }

  refresh() {
    if (!this.u) return;
    this.u.setData(this.data);
    this.drawn = Date.now();
  }

  build(series, names) {
    if (this.u) this.u.destroy();
    this.names = names;
    // The labels drawn on each axis, kept for `status()` (the canvas holds only pixels).
    const labels = (key, format) => (u, splits) => (this.ticks[key] = format(splits));
    const axis = { stroke: "#6b7280", font: FONT, grid: { stroke: "#eef0f3", width: 1 }, ticks: { stroke: "#e3e6ea", width: 1 } };
    const now = () => Date.now() / 1000;
    const scales = { x: { time: true, range: () => [now() - this.window, now()] } };
    // Time labels as close as they fit (every 15 to 60 s, three or more over two minutes), at
    // round clock times; uPlot's own choice left two a minute apart.
    const axes = [{
      ...axis, scale: "x",
      splits: (u, i, min, max) => {
        const width = u.bbox.width / (window.devicePixelRatio || 1);
        const room = textWidth("00:00:00") + 14;
        const step = [15, 20, 30, 40, 60].find((s) => (width * s) / (max - min) >= room) || 60;
        const out = [];
        for (let t = Math.ceil(min / step) * step; t <= max; t += step) out.push(t);
        return out;
      },
      values: labels("x", (splits) => splits.map(clock)),
    }];
    this.scales.forEach((s, i) => {
      scales[s.key] = { range: (u, lo, hi) => [0, s.max || (hi > 0 ? hi * 1.15 : 1)] };
      axes.push({
        ...axis, scale: s.key, side: i === 0 ? 3 : 1, space: 24,
        grid: { ...axis.grid, show: i === 0 },
        values: labels(s.key, (splits) => amounts(splits, s.unit)),
        size: (u, values) => 14 + Math.max(24, ...(values || []).map(textWidth)),
      });
    });
    const multi = series.length > 1 && series.length <= COLORS.length;
    // The server's words for the lines ("one line per core") only where no legend names them.
    const note = this.box.parentElement.querySelector(".legend");
    if (note) note.hidden = multi;
    this.u = new uPlot({
      ...this.size(), scales, axes,
      series: [
        { label: "time", value: (u, v) => (v == null ? "–" : clock(v)) },
        ...series.map((s, i) => ({
          label: s.label, scale: s.scale, stroke: COLORS[i % COLORS.length], width: 1.5,
          points: { show: false },
          value: (u, v) => amount(v, (this.scales.find((c) => c.key === s.scale) || {}).unit),
        })),
      ],
      legend: { show: multi, live: false },
      cursor: { drag: { x: false, y: false } },
    }, [[], ...series.map(() => [])], this.box);
  }

  status() {
    const x = this.u && this.u.scales.x;
    return {
      xLabels: this.ticks.x || [],
      yLabels: Object.fromEntries(this.scales.map((s) => [s.key, this.ticks[s.key] || []])),
      // Without live values the legend has a row per line, none for the time.
      legend: [...this.box.querySelectorAll(".u-legend .u-series th")].map((th) => th.textContent),
      window: x ? Math.round(x.max - x.min) : 0,
      points: this.data[0].length,
      seeded: this.seeded,
    };
  }
}
