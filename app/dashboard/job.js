// @ts-check
// The job page: head, graph, timeline, nodes, events, parameters and the live log.
import { api, followLog, poll } from "./api.js";
import {
  REFRESH_MS, TERMINAL, elapsedSince, fmtSeconds, h, isAbort, jobHref, progressBar, setStatus,
  shortId, statusBadge, text, timeEl,
} from "./dom.js";
import { layoutPipeline, renderGraph, selectedNodes } from "./graph.js";
import { RunLog } from "./runlog.js";
import { renderTimeline } from "./timeline.js";

const LOG_MAX_CHARS = 1_000_000; // what the log view keeps; older output is trimmed
const STATES = ["waiting", "running", "completed", "failed", "skipped"];

/** @param {string} name @param {string} [queue] */
export function pipelineHref(name, queue) {
  return "#/pipelines/" + encodeURIComponent(name) + (queue && queue !== "default" ? "?queue=" + encodeURIComponent(queue) : "");
}

/**
 * @param {HTMLElement} view
 * @param {string} id
 * @param {AbortSignal} signal
 */
export function jobPage(view, id, signal) {
  document.title = "Job " + shortId(id) + " · Kedro job gateway";
  const title = h("h1", { class: "job-title" }, h("span", { class: "pipeline-name" }, "Job"));
  const badge = statusBadge("pending");
  badge.id = "job-status";
  const bar = progressBar();
  const cancelArea = h("div", { class: "cancel-area" });
  const facts = h("dl", { class: "facts" });
  const errorBox = h("pre", { class: "error-message", id: "error-message", hidden: true });
  const notice = h("p", { class: "field-error", role: "alert", hidden: true });
  const nodesBox = h("div", { id: "nodes" });
  const attemptsBox = h("div", { id: "attempts" });
  const eventsBox = h("ol", { class: "events", id: "events" });
  const paramsBox = h("pre", { class: "params", id: "job-parameters" });
  const graphBox = h("div", { class: "graph-wrap", id: "graph" }, h("p", { class: "muted" }, "Loading the pipeline…"));
  const legend = h("ul", { class: "legend", "aria-label": "Node states" },
    STATES.map((st) => h("li", { "data-state": st }, h("span", { class: "swatch" }), st)));
  const detail = h("div", { class: "node-detail", id: "node-detail", hidden: true });
  const timelineBox = h("div", { class: "timeline-wrap", id: "timeline" }, h("p", { class: "muted" }, "No node has started yet."));
  /** @type {ReturnType<typeof renderGraph> | null} */
  let graph = null;
  /** @type {any[] | null} */
  let pipelineNodes = null;
  /** @type {Set<string> | null} */
  let selection = null;
  /** @type {string | null} */
  let selected = null;
  let runlog = new RunLog([]);
  let drawQueued = false;
  const log = logTail(id, signal, {
    onData(data) { runlog.feed(data); queueDraw(); },
    onEnd(final) { show(final); },
  });
  view.append(
    h("p", {}, h("a", { href: "#/", class: "back" }, "← All jobs")),
    h("section", { class: "card job-head" },
      h("div", { class: "job-title-row" }, title, badge),
      h("p", { class: "mono muted job-id" }, id),
      h("div", { class: "job-progress" }, bar.el, cancelArea),
      notice, errorBox, facts, attemptsBox),
    h("section", { class: "card graph-card" },
      h("div", { class: "card-head" }, h("h2", {}, "Graph"), legend),
      graphBox, detail),
    h("section", { class: "card timeline-card" }, h("h2", {}, "Timeline"), timelineBox),
    h("div", { class: "job-grid" },
      h("section", { class: "card" }, h("h2", {}, "Nodes"), nodesBox),
      h("section", { class: "card" }, h("h2", {}, "Events"), eventsBox),
      h("section", { class: "card" }, h("h2", {}, "Parameters"), paramsBox)),
    log.el);

  let job = null;
  let eventsKey = null;
  let confirming = false;
  let cancelling = false;

  function renderCancel() {
    if (job && (job.status === "failed" || job.status === "cancelled")) {
      cancelArea.replaceChildren(h("button", { type: "button", class: "secondary", id: "rerun-job",
        onclick: doRerun }, "Rerun from failure"));
      return;
    }
    if (!job || TERMINAL.has(job.status)) {
      cancelArea.replaceChildren();
      return;
    }
    if (job.cancel_requested || cancelling) {
      cancelArea.replaceChildren(h("span", { class: "muted", id: "cancel-state" }, "Cancel requested…"));
    } else if (confirming) {
      cancelArea.replaceChildren(
        h("span", { class: "confirm-text" }, job.status === "running" ? "Stop this run?" : "Cancel this job?"),
        h("button", { type: "button", class: "danger", id: "confirm-cancel", onclick: doCancel }, "Yes, cancel"),
        h("button", { type: "button", class: "secondary", id: "keep-job",
          onclick: () => { confirming = false; renderCancel(); } }, "Keep it"));
    } else {
      cancelArea.replaceChildren(h("button", { type: "button", class: "danger", id: "cancel-job",
        onclick: () => { confirming = true; renderCancel(); } }, "Cancel job"));
    }
  }

  async function doCancel() {
    cancelling = true;
    confirming = false;
    renderCancel();
    try {
      show(await api("/jobs/" + encodeURIComponent(id) + "/cancel", { method: "POST", signal }));
    } catch (err) {
      if (isAbort(err)) return;
      text(notice, err.status === 409 ? "The job had already finished." : "Cancel failed: " + err.message);
      notice.hidden = false;
    } finally {
      cancelling = false;
      renderCancel();
    }
  }

  async function doRerun() {
    notice.hidden = true;
    try {
      const rerun = await api("/jobs/" + encodeURIComponent(id) + "/rerun",
        { method: "POST", body: { from: "failure" }, signal });
      location.hash = jobHref(rerun.id);
    } catch (err) {
      if (isAbort(err)) return;
      text(notice, "Rerun refused: " + err.message);
      notice.hidden = false;
    }
  }

  function renderAttempts() {
    const attempts = job.results && Array.isArray(job.results.attempts) ? job.results.attempts : [];
    if (attempts.length < 2 && !job.next_attempt_at) {
      attemptsBox.replaceChildren();
      return;
    }
    attemptsBox.replaceChildren(h("h2", {}, "Attempts"), h("ol", { class: "events" },
      attempts.map((a) => h("li", { "data-attempt": String(a.attempt) },
        statusBadge(a.status), ` attempt ${a.attempt}`,
        a.worker ? ` on ${a.worker}` : "",
        `, ${fmtSeconds(a.execution_time)}, exit code ${a.exit_code === null ? "—" : a.exit_code}`,
        `, ${(a.completed_nodes || []).length} nodes completed`,
        a.error ? h("span", { class: "reason" }, " " + a.error) : null)),
      job.next_attempt_at
        ? h("li", { id: "next-attempt" }, statusBadge("pending"), " next attempt at ", timeEl(job.next_attempt_at))
        : null));
  }

  function fact(label, value) {
    return [h("div", { class: "fact" }, h("dt", {}, label), h("dd", {}, value))];
  }

  function show(current) {
    job = current;
    document.title = `${job.pipeline_name} · ${job.status} · Kedro job gateway`;
    title.replaceChildren(h("a", { class: "pipeline-name", href: pipelineHref(job.pipeline_name, job.queue),
      title: "This pipeline's recent runs" }, job.pipeline_name));
    setStatus(badge, job.status);
    bar.update(job, selection ? selection.size : null);
    text(errorBox, job.error_message);
    errorBox.dataset.status = job.status;
    errorBox.hidden = !job.error_message;
    const timing = job.started_at && !TERMINAL.has(job.status) && job.execution_time == null
      ? fmtSeconds(elapsedSince(job.started_at)) + " so far"
      : fmtSeconds(job.execution_time);
    facts.replaceChildren(
      ...fact("Created", timeEl(job.created_at)),
      ...fact("Started", timeEl(job.started_at)),
      ...fact("Completed", timeEl(job.completed_at)),
      ...fact("Execution time", h("span", { id: "execution-time" }, timing)),
      ...fact("Exit code", h("span", { id: "exit-code" }, job.exit_code === null ? "—" : String(job.exit_code))),
      ...fact("Worker", job.worker || "—"),
      ...fact("Attempt", job.retry && job.retry.max_attempts > 1
        ? `${job.attempt} of ${job.retry.max_attempts}` : String(job.attempt)),
      ...(job.rerun_of ? fact("Rerun of", h("a", { href: jobHref(job.rerun_of), id: "rerun-of" },
        shortId(job.rerun_of))) : []),
      ...(job.from_nodes && job.from_nodes.length ? fact("From nodes", job.from_nodes.join(", ")) : []),
      ...fact("Queue", job.queue || "default"),
      ...fact("Environment", job.env || "—"),
      ...(job.timeout_seconds ? fact("Timeout", fmtSeconds(job.timeout_seconds)) : []),
      ...(job.tags && job.tags.length ? fact("Node tags", job.tags.join(", ")) : []),
      ...(job.user_id ? fact("User", job.user_id) : []),
    );
    text(paramsBox, JSON.stringify(job.parameters || {}, null, 2));
    renderNodes();
    renderAttempts();
    renderCancel();
    if (pipelineNodes === null) loadGraph();
    queueDraw();
  }

  let graphAsked = false;
  async function loadGraph() {
    if (graphAsked || !job) return;
    graphAsked = true;
    let pipeline = null;
    try {
      pipeline = await api(`/pipelines/${encodeURIComponent(job.pipeline_name)}?queue=${encodeURIComponent(job.queue || "default")}`, { signal });
    } catch (err) {
      if (isAbort(err)) return;
    }
    if (!pipeline || !Array.isArray(pipeline.nodes)) {
      graphBox.replaceChildren(h("p", { class: "muted" }, "The workers have not reported this pipeline's nodes: no graph."));
      pipelineNodes = [];
      return;
    }
    pipelineNodes = pipeline.nodes;
    selection = selectedNodes(pipeline.nodes, job);
    const fresh = new RunLog(pipeline.nodes);
    if (log.text()) fresh.feed(log.text());
    runlog = fresh;
    const started = performance.now();
    graph = renderGraph(layoutPipeline(pipeline.nodes), selectNode);
    graphBox.replaceChildren(graph.svg);
    graphBox.dataset.renderMs = String(Math.round(performance.now() - started));
    bar.update(job, selection.size);
    queueDraw();
  }

  function queueDraw() {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => { drawQueued = false; if (!signal.aborted) draw(); });
  }

  /** Each node's state, from the job (polled) and the log (streamed). */
  function nodeStates() {
    const states = new Map();
    if (!job || !pipelineNodes) return states;
    const progress = job.progress || {};
    const results = job.results || {};
    const terminal = TERMINAL.has(job.status);
    const completed = new Set([...(progress.completed_node_names || []), ...(results.completed_nodes || [])]);
    const running = new Set(terminal ? [] : [...(progress.running_node_names || []), ...runlog.running]);
    const failed = new Set();
    for (const [name, t] of runlog.times) {
      if (t.end !== undefined) completed.add(name);
      if (t.failedAt !== undefined) failed.add(name);
    }
    for (const [name, t] of Object.entries(results.node_times || {})) if (t && t.failed_at) failed.add(name);
    for (const node of pipelineNodes) {
      const name = node.name;
      let state = "waiting";
      if (completed.has(name)) state = "completed";
      else if (failed.has(name)) state = "failed";
      else if (running.has(name)) state = "running";
      else if (selection && !selection.has(name)) state = "skipped";
      states.set(name, state);
    }
    return states;
  }

  /** Bars for the timeline: the runner's recorded times once the job ended, else the log's. */
  function bars(states) {
    const out = [];
    const recorded = job && TERMINAL.has(job.status) && job.results && job.results.node_times;
    if (recorded && Object.keys(recorded).length) {
      const exited = Date.parse(job.results.process_exited_at || job.completed_at);
      for (const [name, t] of Object.entries(recorded)) {
        const start = Date.parse(t.started_at);
        if (Number.isNaN(start)) continue;
        const end = Date.parse(t.ended_at || t.failed_at) || exited || start;
        out.push({ name, start, end, state: t.ended_at ? "completed" : t.failed_at ? "failed" : "stopped" });
      }
      return out;
    }
    const now = runlog.now();
    for (const [name, t] of runlog.times) {
      if (t.start === undefined || Number.isNaN(t.start)) continue;
      const end = t.end ?? t.failedAt ?? (job && TERMINAL.has(job.status) ? runlog.lastLogged : now);
      const state = t.end !== undefined ? "completed" : t.failedAt !== undefined ? "failed"
        : states.get(name) === "running" ? "running" : "stopped";
      out.push({ name, start: t.start, end: Math.max(t.start, Number.isNaN(end) ? t.start : end), state });
    }
    return out;
  }

  let timelineKey = "";
  function draw() {
    if (!job) return;
    const states = nodeStates();
    if (graph) graph.setStates(states);
    const list = bars(states);
    const key = list.map((b) => `${b.name}:${b.state}:${b.start}:${b.state === "running" ? "" : b.end}`).join("|");
    const width = timelineBox.clientWidth || 600;
    if (!list.length) {
      if (timelineKey !== "") timelineBox.replaceChildren(h("p", { class: "muted" }, "No node has started yet."));
      timelineKey = "";
    } else if (key !== timelineKey || list.some((b) => b.state === "running")) {
      timelineKey = key;
      timelineBox.replaceChildren(renderTimeline(list, width, selectNode));
    }
    if (selected) showDetail(selected, states);
  }

  /** @param {string} name */
  function selectNode(name) {
    selected = selected === name ? null : name;
    if (graph) graph.select(selected);
    if (selected) showDetail(selected, nodeStates());
    else detail.hidden = true;
  }

  /** @param {string} name @param {Map<string, string>} states */
  function showDetail(name, states) {
    const node = (pipelineNodes || []).find((n) => n.name === name) || { name, inputs: [], outputs: [] };
    const live = runlog.times.get(name) || {};
    const recorded = (job && job.results && job.results.node_times && job.results.node_times[name]) || {};
    const recordedEnd = Date.parse(recorded.ended_at || recorded.failed_at) - Date.parse(recorded.started_at);
    const seconds = !Number.isNaN(recordedEnd) ? recordedEnd / 1000
      : job && job.results && job.results.node_seconds ? job.results.node_seconds[name] : undefined;
    const start = live.start, end = live.end ?? live.failedAt;
    const took = typeof seconds === "number" ? seconds
      : start !== undefined && end !== undefined ? (end - start) / 1000
        : start !== undefined && states.get(name) === "running" ? (runlog.now() - start) / 1000 : null;
    const error = recorded.error ? recorded.error + (recorded.exception ? "\n" + recorded.exception : "") : live.error;
    const lines = runlog.lines.get(name) || [];
    const state = states.get(name) || "waiting";
    detail.dataset.node = name;
    detail.replaceChildren(
      h("div", { class: "detail-head" },
        h("h3", { class: "node-name" }, name),
        h("span", { class: "badge", "data-state": state, id: "node-state" }, state),
        h("button", { type: "button", class: "secondary small", onclick: () => selectNode(name) }, "Close")),
      h("dl", { class: "facts" },
        h("div", {}, h("dt", {}, "Function"), h("dd", { class: "mono" }, node.func || "—")),
        h("div", {}, h("dt", {}, "Inputs"), h("dd", {}, (node.inputs || []).join(", ") || "—")),
        h("div", {}, h("dt", {}, "Outputs"), h("dd", {}, (node.outputs || []).join(", ") || "—")),
        h("div", {}, h("dt", {}, "Started"), h("dd", {}, recorded.started_at ? timeEl(recorded.started_at) : "—")),
        h("div", {}, h("dt", {}, "Duration"), h("dd", { id: "node-duration" }, took === null ? "—" : fmtSeconds(took) + (state === "running" ? "…" : ""))),
        (node.tags || []).length ? h("div", {}, h("dt", {}, "Tags"), h("dd", {}, node.tags.join(", "))) : null),
      ...(error ? [h("pre", { class: "error-message", "data-status": "failed" }, error)] : []),
      h("pre", { class: "log node-log", id: "node-log" },
        lines.length ? lines.join("\n") : state === "skipped" ? "Not in this run's selection." : "No lines logged for this node yet."));
    detail.hidden = false;
  }

  function renderNodes() {
    const results = job.results || {};
    const progress = job.progress || {};
    const completed = Array.isArray(progress.completed_node_names) ? progress.completed_node_names : [];
    const names = Array.isArray(results.completed_nodes) ? results.completed_nodes : completed;
    const running = Array.isArray(progress.running_node_names) ? progress.running_node_names : [];
    const seconds = results.node_seconds && typeof results.node_seconds === "object" ? results.node_seconds : {};
    const total = progress.total_nodes;
    const runningNote = running.length
      ? h("p", { class: "muted", "data-running": running.join(",") }, "Running now: " + running.join(", "))
      : null;
    if (!names.length) {
      nodesBox.replaceChildren(h("p", { class: "muted" },
        TERMINAL.has(job.status) ? "No node completed." : "No node has completed yet."));
      if (runningNote) nodesBox.append(runningNote);
      return;
    }
    const longest = Math.max(0.001, ...names.map((n) => Number(seconds[n]) || 0));
    const list = h("table", { class: "nodes-table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Node"), h("th", { scope: "col", class: "num" }, "Time"))),
      h("tbody", {}, names.map((name) => {
        const s = typeof seconds[name] === "number" ? seconds[name] : null;
        const fill = h("span", { class: "node-fill" });
        fill.style.width = s === null ? "0%" : Math.max(1, (s / longest) * 100) + "%";
        return h("tr", { "data-node": name },
          h("td", {}, h("span", { class: "node-name" }, name), h("span", { class: "node-bar" }, fill)),
          h("td", { class: "num" }, s === null ? "—" : fmtSeconds(s)));
      })));
    const missing = TERMINAL.has(job.status) && total && total > names.length ? total - names.length : 0;
    nodesBox.replaceChildren(list);
    if (runningNote) nodesBox.append(runningNote);
    if (missing) nodesBox.append(h("p", { class: "muted" }, `${missing} of ${total} nodes did not complete.`));
  }

  async function loadEvents() {
    const data = await api("/jobs/" + encodeURIComponent(id) + "/events", { signal });
    eventsBox.replaceChildren(...(data.items || []).map((e) =>
      h("li", {},
        statusBadge(e.status), " ", timeEl(e.at),
        e.reason ? h("span", { class: "reason" }, " " + e.reason) : null,
        h("span", { class: "muted" }, ` attempt ${e.attempt}` + (e.worker ? ` · ${e.worker}` : "")))));
  }

  poll(signal, REFRESH_MS, async () => {
    let current;
    try {
      current = await api("/jobs/" + encodeURIComponent(id), { signal });
    } catch (err) {
      if (err.status === 404 || err.status === 422) {
        view.replaceChildren(
          h("p", {}, h("a", { href: "#/", class: "back" }, "← All jobs")),
          h("section", { class: "card" }, h("h1", {}, "No such job"),
            h("p", {}, "There is no job ", h("code", {}, id), " (or it is not yours).")));
        return false;
      }
      throw err;
    }
    show(current);
    const key = `${current.status}/${current.attempt}`;
    if (key !== eventsKey) {
      eventsKey = key;
      try {
        await loadEvents();
      } catch (err) {
        if (isAbort(err)) throw err;
        eventsKey = null;
      }
    }
    return !TERMINAL.has(current.status);
  });
}

/**
 * The job's output, streamed (SSE); `on` hears every piece of text and the end.
 * @param {string} id
 * @param {AbortSignal} signal
 * @param {{onData: (data: string) => void, onEnd: (job: any) => void}} on
 */
function logTail(id, signal, on) {
  const pre = h("pre", { class: "log", id: "log", tabindex: "0", "aria-label": "Output" });
  const state = h("span", { class: "muted", id: "log-state" }, "loading…");
  const follow = h("input", { type: "checkbox", id: "log-follow" });
  follow.checked = true;
  const el = h("section", { class: "card log-card" },
    h("div", { class: "log-head" },
      h("h2", {}, "Output"), state,
      h("label", { class: "check" }, follow, " Follow")),
    pre);
  let offset = 0;
  let chars = 0;
  /** @type {string[]} everything kept, for the node views built after the pipeline loads */
  const kept = [];

  /** @param {string} chunk */
  function add(chunk) {
    pre.append(document.createTextNode(chunk));
    kept.push(chunk);
    chars += chunk.length;
    while (chars > LOG_MAX_CHARS && pre.firstChild) {
      chars -= (pre.firstChild.textContent || "").length;
      pre.firstChild.remove();
      kept.shift();
    }
  }

  followLog(id, 0, signal, {
    onData(data, _start, next) {
      add(data);
      offset = next;
      if (follow.checked) pre.scrollTop = pre.scrollHeight;
      text(state, `following · ${offset} bytes`);
      on.onData(data);
    },
    onEnd(job) {
      text(state, `complete · ${job.output_bytes ?? offset} bytes`);
      pre.dataset.complete = "true";
      on.onEnd(job);
    },
    onState(what) {
      if (pre.dataset.complete !== "true") text(state, `${what} · ${offset} bytes`);
    },
  }).catch((err) => { if (!isAbort(err)) text(state, "stream failed: " + err.message); });
  return { el, text: () => kept.join("") };
}
