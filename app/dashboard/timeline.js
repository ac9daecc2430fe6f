// @ts-check
// A job's nodes on a time axis (Gantt): one bar per node that started, from its start to
// its end (or to now while it runs), so a ParallelRunner's overlap shows.
import { fmtSeconds } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const ROW = 24;
const BAR = 14;
const AXIS = 22;

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 */
function s(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** @param {number} span  seconds */
function step(span) {
  const steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
  return steps.find((st) => span / st <= 8) || 7200;
}

/**
 * @typedef {{name: string, start: number, end: number, state: string}} Bar  (times in ms)
 * @param {Bar[]} bars
 * @param {number} width  px available
 * @param {(name: string) => void} [onSelect]
 */
export function renderTimeline(bars, width, onSelect) {
  const sorted = [...bars].sort((a, b) => a.start - b.start || a.name.localeCompare(b.name));
  const labelWidth = Math.min(240, Math.max(90, ...sorted.map((b) => b.name.length * 7 + 12)));
  const w = Math.max(320, width);
  const plot = w - labelWidth - 70;
  const t0 = Math.min(...sorted.map((b) => b.start));
  const t1 = Math.max(...sorted.map((b) => b.end), t0 + 1);
  const span = (t1 - t0) / 1000;
  const x = (/** @type {number} */ t) => labelWidth + ((t - t0) / (t1 - t0)) * plot;
  const height = AXIS + sorted.length * ROW + 4;
  const svg = s("svg", { class: "gantt", width: w, height, viewBox: `0 0 ${w} ${height}`, role: "img",
    "aria-label": `Timeline of ${sorted.length} nodes over ${fmtSeconds(span)}` });
  const grid = s("g", { class: "axis" });
  const st = step(span);
  for (let v = 0; v <= span + 1e-9; v += st) {
    const gx = x(t0 + v * 1000);
    grid.append(s("line", { x1: gx, x2: gx, y1: AXIS - 4, y2: height, class: "tick" }));
    const label = s("text", { x: gx, y: AXIS - 8, "text-anchor": "middle" });
    label.textContent = v === 0 ? "0" : fmtSeconds(v);
    grid.append(label);
  }
  svg.append(grid);
  sorted.forEach((b, i) => {
    const y = AXIS + i * ROW;
    const row = s("g", { class: "gantt-row", "data-node": b.name });
    const name = s("text", { x: labelWidth - 8, y: y + ROW / 2 + 4, "text-anchor": "end", class: "gantt-label" });
    name.textContent = b.name.length > 32 ? b.name.slice(0, 31) + "…" : b.name;
    const bw = Math.max(2, x(b.end) - x(b.start));
    const bar = s("rect", { x: x(b.start), y: y + (ROW - BAR) / 2, width: bw, height: BAR, rx: 3, class: "gantt-bar", "data-state": b.state, "data-node": b.name });
    const title = s("title");
    const seconds = (b.end - b.start) / 1000;
    title.textContent = `${b.name}: ${b.state}, +${fmtSeconds((b.start - t0) / 1000)} for ${fmtSeconds(seconds)}`;
    bar.append(title);
    const dur = s("text", { x: x(b.start) + bw + 5, y: y + ROW / 2 + 4, class: "gantt-duration" });
    dur.textContent = fmtSeconds(seconds) + (b.state === "running" ? "…" : "");
    row.append(name, bar, dur);
    if (onSelect) row.addEventListener("click", () => onSelect(b.name));
    svg.append(row);
  });
  return svg;
}
