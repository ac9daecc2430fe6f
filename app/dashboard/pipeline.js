// @ts-check
// A pipeline's page: its graph, its recent runs' durations as a chart, success rate,
// p50 and p95 duration, and a link to each run.
import { api, poll } from "./api.js";
import { REFRESH_MS, TERMINAL, elapsedSince, fmtSeconds, h, isAbort, jobHref, shortId, statusBadge, timeEl } from "./dom.js";
import { layoutPipeline, renderGraph } from "./graph.js";

const SVG = "http://www.w3.org/2000/svg";
const RUNS = 50;

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 */
function s(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** @param {any} run  seconds it took, or so far */
function runSeconds(run) {
  if (typeof run.execution_time === "number") return run.execution_time;
  if (run.started_at && !TERMINAL.has(run.status)) return elapsedSince(run.started_at) || 0;
  return 0;
}

/**
 * Durations of the runs, oldest left: one point per run (a link to it), p50 and p95 lines.
 * @param {any[]} runs  newest first
 * @param {any} stats
 * @param {number} width
 */
export function durationChart(runs, stats, width) {
  const ordered = [...runs].reverse();
  const w = Math.max(300, width);
  const height = 220;
  const pad = { left: 56, right: 16, top: 14, bottom: 28 };
  const plotW = w - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = Math.max(0.001, ...ordered.map(runSeconds), stats.p95_seconds || 0) * 1.1;
  const x = (/** @type {number} */ i) => pad.left + (ordered.length < 2 ? plotW / 2 : (i / (ordered.length - 1)) * plotW);
  const y = (/** @type {number} */ v) => pad.top + plotH - (v / max) * plotH;
  const svg = s("svg", { class: "chart", width: w, height, viewBox: `0 0 ${w} ${height}`, role: "img",
    "aria-label": `Durations of the last ${ordered.length} runs` });
  const axis = s("g", { class: "axis" });
  for (let k = 0; k <= 4; k++) {
    const v = (max / 4) * k;
    axis.append(s("line", { x1: pad.left, x2: w - pad.right, y1: y(v), y2: y(v), class: "tick" }));
    const label = s("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" });
    label.textContent = k === 0 ? "0" : fmtSeconds(v);
    axis.append(label);
  }
  const caption = s("text", { x: pad.left, y: height - 8 });
  caption.textContent = "older ← runs → newer";
  axis.append(caption);
  svg.append(axis);
  for (const [key, value] of [["p50", stats.p50_seconds], ["p95", stats.p95_seconds]]) {
    if (typeof value !== "number") continue;
    const g = s("g", { class: "quantile", "data-quantile": key });
    g.append(s("line", { x1: pad.left, x2: w - pad.right, y1: y(value), y2: y(value) }));
    const left = key === "p50";  // labels at both ends: p50 and p95 are often close
    const label = s("text", { x: left ? pad.left + 4 : w - pad.right, y: y(value) - 4, "text-anchor": left ? "start" : "end" });
    label.textContent = `${key} ${fmtSeconds(value)}`;
    g.append(label);
    svg.append(g);
  }
  const finished = ordered.map((run, i) => [run, i]).filter(([run]) => typeof run.execution_time === "number");
  if (finished.length > 1) {
    svg.append(s("polyline", { class: "trend",
      points: finished.map(([run, i]) => `${x(i).toFixed(1)},${y(run.execution_time).toFixed(1)}`).join(" ") }));
  }
  ordered.forEach((run, i) => {
    const link = s("a", { href: jobHref(run.id), class: "run-point", "data-job-id": run.id, "data-status": run.status });
    const dot = s("circle", { cx: x(i), cy: y(runSeconds(run)), r: 5 });
    if (!TERMINAL.has(run.status)) dot.classList.add("open");
    const title = s("title");
    title.textContent = `${shortId(run.id)} · ${run.status} · ${fmtSeconds(runSeconds(run))}` +
      (TERMINAL.has(run.status) ? "" : " so far");
    link.append(title, dot);
    svg.append(link);
  });
  return svg;
}

/**
 * @param {HTMLElement} view
 * @param {string} name
 * @param {string} queue
 * @param {AbortSignal} signal
 */
export function pipelinePage(view, name, queue, signal) {
  document.title = `${name} · pipeline · Kedro job gateway`;
  const query = queue ? "?queue=" + encodeURIComponent(queue) : "";
  const facts = h("dl", { class: "facts", id: "pipeline-facts" });
  const chartBox = h("div", { class: "chart-wrap", id: "runs-chart" }, h("p", { class: "muted" }, "Loading runs…"));
  const tbody = h("tbody", {});
  const graphBox = h("div", { class: "graph-wrap", id: "graph" }, h("p", { class: "muted" }, "Loading the pipeline…"));
  view.append(
    h("p", {}, h("a", { href: "#/", class: "back" }, "← All jobs")),
    h("section", { class: "card" },
      h("div", { class: "job-title-row" }, h("h1", { class: "job-title" }, name),
        h("span", { class: "muted" }, "pipeline" + (queue ? ` on queue ${queue}` : ""))),
      facts),
    h("section", { class: "card chart-card" }, h("h2", {}, `Recent runs`), chartBox),
    h("section", { class: "card graph-card" }, h("h2", {}, "Graph"), graphBox),
    h("section", { class: "card chart-card" }, h("h2", {}, "Runs"),
      h("div", { class: "table-wrap" }, h("table", { id: "runs-table" },
        h("thead", {}, h("tr", {}, ["Status", "Run", "Created", "Duration"].map((c) => h("th", { scope: "col" }, c)))),
        tbody))));

  api(`/pipelines/${encodeURIComponent(name)}${query}`, { signal }).then((pipeline) => {
    if (!Array.isArray(pipeline.nodes)) throw new Error("nodes unknown");
    graphBox.replaceChildren(renderGraph(layoutPipeline(pipeline.nodes)).svg);
  }).catch((err) => {
    if (!isAbort(err)) graphBox.replaceChildren(h("p", { class: "muted" }, "No graph: " + err.message));
  });

  const fact = (/** @type {string} */ label, /** @type {any} */ value, /** @type {string} */ id) =>
    h("div", { class: "fact" }, h("dt", {}, label), h("dd", { id }, value));
  let lastKey = "";
  poll(signal, REFRESH_MS * 2, async () => {
    const stats = await api(`/pipelines/${encodeURIComponent(name)}/stats?limit=${RUNS}${queue ? "&queue=" + encodeURIComponent(queue) : ""}`, { signal });
    const runs = stats.runs || [];
    facts.replaceChildren(
      fact("Recent runs", String(runs.length), "stat-runs"),
      fact("Success rate", stats.success_rate === null ? "—" : `${Math.round(stats.success_rate * 1000) / 10}%`, "stat-success"),
      fact("Completed", String(stats.completed), "stat-completed"),
      fact("Failed", String(stats.failed), "stat-failed"),
      fact("Cancelled", String(stats.cancelled), "stat-cancelled"),
      fact("p50 duration", fmtSeconds(stats.p50_seconds), "stat-p50"),
      fact("p95 duration", fmtSeconds(stats.p95_seconds), "stat-p95"));
    const key = JSON.stringify(runs.map((r) => [r.id, r.status, r.execution_time]));
    if (key !== lastKey || runs.some((r) => !TERMINAL.has(r.status))) {
      lastKey = key;
      chartBox.replaceChildren(runs.length
        ? durationChart(runs, stats, chartBox.clientWidth || 800)
        : h("p", { class: "muted" }, "No runs of this pipeline yet."));
      tbody.replaceChildren(...runs.map((run) => h("tr", { "data-job-id": run.id },
        h("td", {}, statusBadge(run.status)),
        h("td", {}, h("a", { href: jobHref(run.id), class: "mono" }, shortId(run.id))),
        h("td", {}, timeEl(run.created_at)),
        h("td", { class: "num" }, typeof run.execution_time === "number" ? fmtSeconds(run.execution_time) : "—"))));
    }
  });
}
