// @ts-check
// The jobs page: the submit form and the list of jobs.
import { api, cleanMsg, describeDetail, fieldPath, loadPipelines, poll } from "./api.js";
import {
  REFRESH_MS, STATUSES, TERMINAL, duration, h, isAbort, jobHref, progressBar, randomKey, setStatus,
  shortId, statusBadge, text, timeEl,
} from "./dom.js";
import { selectedNodes } from "./graph.js";

const PAGE_SIZE = 20;

/**
 * How many nodes a job runs, from the discovered pipeline and its run options (before
 * Kedro reports the total); null when the workers have not reported the pipeline.
 * @param {any} job
 * @returns {Promise<number | null>}
 */
export async function plannedTotal(job) {
  if (Array.isArray(job.planned_nodes) && job.planned_nodes.length) return job.planned_nodes.length;
  const answer = await loadPipelines(job.queue === "default" ? "" : job.queue);
  const pipeline = (answer.items || []).find((p) => p.name === job.pipeline_name);
  return pipeline && Array.isArray(pipeline.nodes) ? selectedNodes(pipeline.nodes, job).size : null;
}

// Kept across navigation, so going to a job and back keeps the form and the list's place.
const draft = {
  pipeline: "",
  parameters: "{}",
  env: "",
  queue: "",
  timeout: "",
  tags: "",
  idempotencyKey: randomKey(),
};
const listState = { status: "", pipeline: "", cursors: [], auto: true };

export function jobsPage(view, signal) {
  document.title = "Jobs · Kedro job gateway";
  const form = submitForm(signal);
  const list = jobsList(signal);
  form.onSubmitted = () => list.refresh();
  view.append(h("div", { class: "jobs-layout" }, form.el, list.el));
}

function submitForm(signal) {
  const pipelineError = h("p", { class: "field-error", id: "pipeline-error", hidden: true });
  const pipelineHint = h("p", { class: "hint", id: "pipeline-hint" });
  const pipelineSlot = h("div", { class: "pipeline-slot" }, h("p", { class: "muted" }, "Loading pipelines…"));
  const params = h("textarea", {
    id: "parameters",
    name: "parameters",
    rows: "7",
    spellcheck: "false",
    autocomplete: "off",
    "aria-describedby": "parameters-error",
    value: draft.parameters,
  });
  const paramsError = h("p", { class: "field-error", id: "parameters-error", hidden: true });
  const optionInputs = {
    env: h("input", { id: "opt-env", name: "env", value: draft.env, placeholder: "base", autocomplete: "off" }),
    queue: h("input", { id: "opt-queue", name: "queue", value: draft.queue, placeholder: "default", autocomplete: "off" }),
    timeout_seconds: h("input", {
      id: "opt-timeout", name: "timeout_seconds", type: "number", min: "1", step: "any", value: draft.timeout,
    }),
    tags: h("input", { id: "opt-tags", name: "tags", value: draft.tags, placeholder: "tag1, tag2", autocomplete: "off" }),
  };
  const optionErrors = h("p", { class: "field-error", id: "options-error", hidden: true });
  const options = h("details", { class: "options" },
    h("summary", {}, "Run options"),
    h("div", { class: "option-grid" },
      h("label", { for: "opt-env" }, "Environment"), optionInputs.env,
      h("label", { for: "opt-queue" }, "Queue"), optionInputs.queue,
      h("label", { for: "opt-timeout" }, "Timeout (s)"), optionInputs.timeout_seconds,
      h("label", { for: "opt-tags" }, "Node tags"), optionInputs.tags),
    optionErrors);
  const submit = h("button", { type: "submit", id: "submit-job" }, "Submit job");
  const formError = h("p", { class: "field-error", id: "form-error", role: "alert", hidden: true });
  const result = h("p", { class: "submit-result", id: "submit-result", "aria-live": "polite" });
  const form = h("form", { class: "card submit-form", id: "submit-form", novalidate: true, "data-ready": "false" },
    h("h2", {}, "Submit a job"),
    h("label", { for: "pipeline" }, "Pipeline"),
    pipelineSlot, pipelineHint, pipelineError,
    h("label", { for: "parameters" }, "Parameters ", h("span", { class: "muted" }, "(JSON object)")),
    params, paramsError,
    options,
    h("div", { class: "buttons" }, submit),
    formError, result);
  const component = { el: form, onSubmitted: () => {} };
  let pipelineInput = null;

  function fieldError(el, message) {
    text(el, message || "");
    el.hidden = !message;
  }

  function newKey() {
    draft.idempotencyKey = randomKey();
  }

  async function fillPipelines() {
    form.dataset.ready = "false";
    const answer = await loadPipelines(optionInputs.queue.value.trim());
    if (signal.aborted) return;
    const items = answer.items || [];
    if (items.length) {
      const select = h("select", { id: "pipeline", name: "pipeline_name", "aria-describedby": "pipeline-hint" },
        items.map((p) => h("option", { value: p.name }, p.name)));
      if (items.some((p) => p.name === draft.pipeline)) select.value = draft.pipeline;
      const describe = () => {
        const chosen = items.find((p) => p.name === select.value);
        const nodes = chosen && Array.isArray(chosen.nodes) ? chosen.nodes : null;
        text(pipelineHint, nodes ? `${nodes.length} node${nodes.length === 1 ? "" : "s"}: ` +
          nodes.map((n) => n.name).join(", ") : "");
      };
      select.addEventListener("change", () => { draft.pipeline = select.value; newKey(); describe(); });
      draft.pipeline = select.value;
      describe();
      pipelineInput = select;
    } else {
      const input = h("input", {
        id: "pipeline", name: "pipeline_name", value: draft.pipeline, placeholder: "e.g. arithmetic",
        autocomplete: "off", spellcheck: "false", "aria-describedby": "pipeline-hint",
      });
      input.addEventListener("input", () => { draft.pipeline = input.value; newKey(); });
      text(pipelineHint, answer.unavailable);
      pipelineInput = input;
    }
    pipelineSlot.replaceChildren(pipelineInput);
    form.dataset.ready = "true";
  }

  function parseParameters() {
    const raw = params.value.trim();
    if (!raw) return { value: {} };
    let value;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      return { error: "Not valid JSON: " + err.message };
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return { error: "Parameters must be a JSON object, like {\"initial_value\": 10}." };
    }
    return { value };
  }

  function checkParameters() {
    const parsed = parseParameters();
    fieldError(paramsError, parsed.error);
    params.setAttribute("aria-invalid", parsed.error ? "true" : "false");
    return parsed;
  }

  params.addEventListener("input", () => { draft.parameters = params.value; newKey(); checkParameters(); });
  for (const [name, input] of Object.entries(optionInputs)) {
    input.addEventListener("input", () => {
      draft[name === "timeout_seconds" ? "timeout" : name] = input.value;
      newKey();
    });
  }
  optionInputs.queue.addEventListener("change", () => { fillPipelines(); });

  function showServerErrors(detail) {
    const byField = { pipeline_name: [], parameters: [], options: [], other: [] };
    if (Array.isArray(detail)) {
      for (const e of detail) {
        const loc = Array.isArray(e && e.loc) ? e.loc : [];
        const field = loc[0] === "body" ? loc[1] : undefined;
        const rest = fieldPath(loc.slice(2));
        const message = (rest ? rest + ": " : "") + cleanMsg(e && e.msg);
        if (field === "pipeline_name" || field === "parameters") byField[field].push(message);
        else if (field !== undefined && field in optionInputs) byField.options.push(field + ": " + message);
        else byField.other.push(describeDetail([e]));
      }
    } else {
      byField.other.push(describeDetail(detail));
    }
    fieldError(pipelineError, byField.pipeline_name.join("\n"));
    fieldError(paramsError, byField.parameters.join("\n"));
    fieldError(optionErrors, byField.options.join("\n"));
    fieldError(formError, byField.other.join("\n"));
    params.setAttribute("aria-invalid", byField.parameters.length ? "true" : "false");
    if (byField.options.length) options.open = true;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const el of [pipelineError, paramsError, optionErrors, formError]) fieldError(el, "");
    text(result, "");
    const parsed = checkParameters();
    const name = pipelineInput ? pipelineInput.value.trim() : "";
    if (!name) fieldError(pipelineError, "Choose or type a pipeline.");
    if (parsed.error || !name) return;
    const body = { pipeline_name: name, parameters: parsed.value };
    if (optionInputs.env.value.trim()) body.env = optionInputs.env.value.trim();
    if (optionInputs.queue.value.trim()) body.queue = optionInputs.queue.value.trim();
    if (optionInputs.timeout_seconds.value.trim()) {
      body.timeout_seconds = Number(optionInputs.timeout_seconds.value);
    }
    const tags = optionInputs.tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (tags.length) body.tags = tags;
    submit.disabled = true;
    try {
      const job = await api("/jobs", {
        method: "POST", body, headers: { "Idempotency-Key": draft.idempotencyKey }, signal,
      });
      newKey();
      result.replaceChildren("Submitted ",
        h("a", { href: jobHref(job.id), id: "submitted-job", "data-job-id": job.id }, `${job.pipeline_name} ${shortId(job.id)}`),
        ` (${job.status}).`);
      component.onSubmitted(job);
    } catch (err) {
      if (isAbort(err)) return;
      if (err.status === 401 || err.status === 403) fieldError(formError, "Not submitted: " + err.message);
      else if (err.status === 422) showServerErrors(err.detail);
      else fieldError(formError, `Not submitted (${err.status || "no answer"}): ${err.message}`);
    } finally {
      submit.disabled = false;
    }
  });

  fillPipelines();
  return component;
}

function jobsList(signal) {
  const statusFilter = h("select", { id: "status-filter", "aria-label": "Status" },
    h("option", { value: "" }, "All statuses"),
    STATUSES.map((s) => h("option", { value: s }, s)));
  statusFilter.value = listState.status;
  const pipelineFilter = h("input", {
    id: "pipeline-filter", type: "search", placeholder: "Pipeline", "aria-label": "Pipeline",
    value: listState.pipeline, autocomplete: "off", spellcheck: "false",
  });
  const auto = h("input", { type: "checkbox", id: "auto-refresh" });
  auto.checked = listState.auto;
  const refreshButton = h("button", { type: "button", class: "secondary", id: "refresh" }, "Refresh");
  const tbody = h("tbody", {});
  const empty = h("p", { class: "muted empty", hidden: true });
  const error = h("p", { class: "field-error", role: "alert", hidden: true });
  const newer = h("button", { type: "button", class: "secondary", id: "newer" }, "← Newer");
  const older = h("button", { type: "button", class: "secondary", id: "older" }, "Older →");
  const pageLabel = h("span", { class: "muted" });
  const updated = h("span", { class: "muted updated" });
  const el = h("section", { class: "card jobs" },
    h("div", { class: "jobs-head" },
      h("h2", {}, "Jobs"),
      h("div", { class: "filters" },
        statusFilter, pipelineFilter,
        h("label", { class: "check" }, auto, " Auto-refresh"),
        refreshButton)),
    h("div", { class: "table-wrap" },
      h("table", { id: "jobs-table" },
        h("thead", {}, h("tr", {},
          ["Status", "Pipeline", "Progress", "Created", "Duration"].map((c) => h("th", { scope: "col" }, c)))),
        tbody)),
    empty, error,
    h("div", { class: "pager" }, newer, pageLabel, older, updated));
  const rows = new Map();
  let nextCursor = null;
  let loading = null;

  function cursor() {
    return listState.cursors.length ? listState.cursors[listState.cursors.length - 1] : null;
  }

  async function load() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (listState.status) query.set("status", listState.status);
    if (listState.pipeline) query.set("pipeline_name", listState.pipeline);
    if (cursor()) query.set("cursor", cursor());
    try {
      const data = await api("/jobs?" + query, { signal });
      error.hidden = true;
      render(data.items || []);
      nextCursor = data.next_cursor || null;
      text(updated, "updated " + new Date().toLocaleTimeString());
    } catch (err) {
      if (isAbort(err)) throw err;
      text(error, "Could not load jobs: " + err.message);
      error.hidden = false;
    }
    older.disabled = !nextCursor;
    newer.disabled = !listState.cursors.length;
    text(pageLabel, `page ${listState.cursors.length + 1}`);
  }

  function refresh() {
    // One request at a time: a slow answer must not be overtaken by an older one.
    if (!loading) loading = load().finally(() => { loading = null; });
    return loading;
  }

  function render(jobs) {
    const seen = new Set();
    jobs.forEach((job, index) => {
      let row = rows.get(job.id);
      if (!row) {
        row = jobRow(job.id);
        rows.set(job.id, row);
      }
      row.update(job);
      seen.add(job.id);
      if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] || null);
    });
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    const filtered = listState.status || listState.pipeline || listState.cursors.length;
    text(empty, filtered ? "No jobs match." : "No jobs yet: submit one.");
    empty.hidden = jobs.length > 0;
  }

  function restart() {
    listState.cursors = [];
    refresh();
  }

  statusFilter.addEventListener("change", () => { listState.status = statusFilter.value; restart(); });
  let typing = null;
  pipelineFilter.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { listState.pipeline = pipelineFilter.value.trim(); restart(); }, 300);
  });
  auto.addEventListener("change", () => { listState.auto = auto.checked; });
  refreshButton.addEventListener("click", () => refresh());
  older.addEventListener("click", () => {
    if (!nextCursor) return;
    listState.cursors.push(nextCursor);
    refresh();
  });
  newer.addEventListener("click", () => {
    listState.cursors.pop();
    refresh();
  });

  poll(signal, REFRESH_MS, async () => {
    if (listState.auto || !rows.size) await refresh();
  });
  return { el, refresh };
}

function jobRow(id) {
  const badge = statusBadge("pending");
  const link = h("a", { href: jobHref(id), class: "job-link" });
  const sub = h("span", { class: "mono muted" }, shortId(id));
  const bar = progressBar();
  const created = h("td", { "data-label": "Created" });
  const took = h("td", { "data-label": "Duration", class: "num" });
  const tr = h("tr", { "data-job-id": id },
    h("td", { "data-label": "Status" }, badge),
    h("td", { "data-label": "Pipeline", class: "pipeline-cell" }, link, " ", sub),
    h("td", { "data-label": "Progress", class: "progress-cell" }, bar.el),
    created, took);
  let createdAt = null;
  return {
    tr,
    update(job) {
      tr.dataset.status = job.status;
      setStatus(badge, job.status);
      text(link, job.pipeline_name);
      bar.update(job);
      if (!(job.progress && job.progress.total_nodes) && !TERMINAL.has(job.status)) {
        plannedTotal(job).then((total) => { if (total) bar.update(job, total); }, () => {});
      }
      if (createdAt !== job.created_at) {
        createdAt = job.created_at;
        created.replaceChildren(timeEl(job.created_at));
      }
      text(took, duration(job));
    },
  };
}
