// @ts-check
// A pipeline's graph: which nodes a run selects, the layout (dagre, vendored) and the SVG.
import dagre from "./vendor/dagre.esm.js";

const SVG = "http://www.w3.org/2000/svg";
const NODE_HEIGHT = 32;
const DATASET_HEIGHT = 22;
const MAX_LABEL = 34;
const BIG_PIPELINE = 60;  // nodes

/**
 * @typedef {{name: string, func?: string, inputs: string[], outputs: string[], tags?: string[]}} PipelineNode
 * @typedef {{id: string, kind: "node" | "dataset", name: string, label: string,
 *            x: number, y: number, width: number, height: number}} Placed
 * @typedef {{from: string, to: string, points: {x: number, y: number}[]}} Edge
 * @typedef {{width: number, height: number, nodes: Placed[], edges: Edge[]}} Layout
 */

/** @param {string} d */
const strip = (d) => d.split("@", 1)[0];

/**
 * The nodes `kedro run` runs for a job, like the gateway's `Graph.selected` (Pipeline.filter).
 * @param {PipelineNode[]} nodes
 * @param {any} job
 * @returns {Set<string>}
 */
export function selectedNodes(nodes, job) {
  if (Array.isArray(job.planned_nodes) && job.planned_nodes.length) return new Set(job.planned_nodes);
  const names = nodes.map((n) => n.name);
  let chosen = new Set(names);
  const keep = (/** @type {Set<string>} */ other) => { chosen = new Set([...chosen].filter((n) => other.has(n))); };
  const list = (/** @type {string} */ key) => (Array.isArray(job[key]) ? job[key] : []);
  const closure = (/** @type {Set<string>} */ datasets, /** @type {boolean} */ down) => {
    const found = new Set();
    let frontier = new Set([...datasets].map(strip));
    while (frontier.size) {
      const step = nodes.filter((n) => !found.has(n.name) &&
        (down ? n.inputs : n.outputs).some((d) => frontier.has(strip(d))));
      step.forEach((n) => found.add(n.name));
      frontier = new Set(step.flatMap((n) => (down ? n.outputs : n.inputs).map(strip)));
    }
    return found;
  };
  const only = (/** @type {string[]} */ picked) => nodes.filter((n) => picked.includes(n.name));
  if (list("tags").length) keep(new Set(nodes.filter((n) => (n.tags || []).some((t) => list("tags").includes(t))).map((n) => n.name)));
  if (list("from_nodes").length) {
    const from = list("from_nodes");
    keep(new Set([...from, ...closure(new Set(only(from).flatMap((n) => n.outputs)), true)]));
  }
  if (list("to_nodes").length) {
    const to = list("to_nodes");
    keep(new Set([...to, ...closure(new Set(only(to).flatMap((n) => n.inputs)), false)]));
  }
  if (list("node_names").length) keep(new Set(list("node_names")));
  if (list("from_inputs").length) keep(closure(new Set(list("from_inputs")), true));
  if (list("to_outputs").length) keep(closure(new Set(list("to_outputs")), false));
  if (list("namespaces").length) {
    keep(new Set(names.filter((name) => list("namespaces").some((ns) => name.startsWith(ns + ".")))));
  }
  return chosen;
}

/** @param {string} s */
function clip(s) {
  return s.length > MAX_LABEL ? s.slice(0, MAX_LABEL - 1) + "…" : s;
}

/**
 * Lay a pipeline out left to right: nodes and the datasets between them.
 * @param {PipelineNode[]} nodes
 * @returns {Layout}
 */
export function layoutPipeline(nodes) {
  // Big pipelines trade some edge crossings for time: dagre's default ranker and its
  // repeated ordering sweeps take seconds past a few hundred vertices.
  const big = nodes.length > BIG_PIPELINE;
  const g = new dagre.graphlib.Graph();
  g.setGraph({
    rankdir: "LR", nodesep: 12, ranksep: 36, edgesep: 6, marginx: 6, marginy: 6,
    ...(big ? { ranker: "longest-path" } : {}),
  });
  g.setDefaultEdgeLabel(() => ({}));
  /** @type {Map<string, string>} */
  const datasets = new Map();
  for (const node of nodes) {
    const label = clip(node.name);
    g.setNode("n:" + node.name, { kind: "node", name: node.name, label, width: 26 + label.length * 7.4, height: NODE_HEIGHT });
    for (const d of [...node.inputs, ...node.outputs]) {
      if (!datasets.has(d)) {
        const dl = clip(d);
        datasets.set(d, dl);
        g.setNode("d:" + d, { kind: "dataset", name: d, label: dl, width: 18 + dl.length * 6.4, height: DATASET_HEIGHT });
      }
    }
    node.inputs.forEach((d) => g.setEdge("d:" + d, "n:" + node.name));
    node.outputs.forEach((d) => g.setEdge("n:" + node.name, "d:" + d));
  }
  dagre.layout(g, big ? { disableOptimalOrderHeuristic: true } : {});
  const graph = g.graph();
  return {
    width: Math.ceil(graph.width || 0),
    height: Math.ceil(graph.height || 0),
    nodes: g.nodes().map((id) => {
      const n = g.node(id);
      return { id, kind: n.kind, name: n.name, label: n.label, x: n.x, y: n.y, width: n.width, height: n.height };
    }),
    edges: g.edges().map((e) => ({ from: e.v, to: e.w, points: g.edge(e).points || [] })),
  };
}

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attrs
 */
function s(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** @param {{x: number, y: number}[]} points */
function edgePath(points) {
  if (!points.length) return "";
  let d = `M${points[0].x.toFixed(1)},${points[0].y.toFixed(1)}`;
  if (points.length === 2) return d + `L${points[1].x.toFixed(1)},${points[1].y.toFixed(1)}`;
  for (let i = 1; i < points.length - 1; i++) {  // smooth: quadratic through midpoints
    const p = points[i];
    const q = points[i + 1];
    const mx = i === points.length - 2 ? q.x : (p.x + q.x) / 2;
    const my = i === points.length - 2 ? q.y : (p.y + q.y) / 2;
    d += `Q${p.x.toFixed(1)},${p.y.toFixed(1)} ${mx.toFixed(1)},${my.toFixed(1)}`;
  }
  return d;
}

/**
 * Draw a layout as SVG. Nodes are `g.gnode[data-node]` (focusable buttons); `setStates`
 * colours them, `onSelect` hears clicks and Enter.
 * @param {Layout} layout
 * @param {(name: string) => void} [onSelect]
 */
export function renderGraph(layout, onSelect) {
  const svg = s("svg", {
    class: "graph", width: layout.width, height: layout.height,
    viewBox: `0 0 ${layout.width} ${layout.height}`, role: "group", "aria-label": "Pipeline graph",
  });
  const defs = s("defs");
  const marker = s("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" });
  marker.append(s("path", { d: "M0,0 L8,4 L0,8 z", class: "arrowhead" }));
  defs.append(marker);
  const edges = s("g", { class: "edges" });
  for (const e of layout.edges) {
    edges.append(s("path", { d: edgePath(e.points), class: "edge", "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to }));
  }
  const shapes = s("g", { class: "shapes" });
  /** @type {Map<string, SVGGElement>} */
  const byName = new Map();
  for (const n of layout.nodes) {
    const x = n.x - n.width / 2;
    const y = n.y - n.height / 2;
    const g = /** @type {SVGGElement} */ (s("g", { class: n.kind === "node" ? "gnode" : "gdataset" }));
    const title = s("title");
    title.textContent = n.name;
    g.append(title);
    if (n.kind === "node") {
      g.dataset.node = n.name;
      g.dataset.state = "waiting";
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "button");
      g.append(s("rect", { x, y, width: n.width, height: n.height, rx: 6 }),
        s("circle", { cx: x + 12, cy: n.y, r: 4.5, class: "dot" }));
      const t = s("text", { x: x + 22, y: n.y + 4.5 });
      t.textContent = n.label;
      g.append(t);
      byName.set(n.name, g);
      if (onSelect) {
        g.addEventListener("click", () => onSelect(n.name));
        g.addEventListener("keydown", (ev) => {
          if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); onSelect(n.name); }
        });
      }
    } else {
      g.dataset.dataset = n.name;
      if (n.name === "parameters" || n.name.startsWith("params:")) g.classList.add("param");
      g.append(s("rect", { x, y, width: n.width, height: n.height, rx: n.height / 2 }));
      const t = s("text", { x: n.x, y: n.y + 4, "text-anchor": "middle" });
      t.textContent = n.label;
      g.append(t);
    }
    shapes.append(g);
  }
  svg.append(defs, edges, shapes);
  return {
    svg,
    /** @param {Map<string, string>} states  node name -> waiting|running|completed|failed|skipped */
    setStates(states) {
      for (const [name, g] of byName) {
        const state = states.get(name) || "waiting";
        if (g.dataset.state !== state) g.dataset.state = state;
        g.setAttribute("aria-label", `${name}: ${state}`);
      }
    },
    /** @param {string | null} name */
    select(name) {
      for (const [n, g] of byName) g.classList.toggle("selected", n === name);
    },
  };
}
