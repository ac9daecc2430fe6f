// The gateway's dashboard: plain JavaScript over the public API (/api/v1), no build step.
// Every piece of text that comes from the API goes into the page as a text node or an
// attribute value, never as markup.
"use strict";

(() => {
  const API = "api/v1"; // relative, so the dashboard also works behind a path prefix
  const KEY_STORAGE = "kedro-gateway.api-key";
  const REFRESH_MS = 2000;
  const LOG_IDLE_MS = 1000;
  const LOG_MAX_CHARS = 1_000_000; // what the log view keeps; older output is trimmed
  const PAGE_SIZE = 20;
  const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);

  // --- DOM helpers ---------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else if (name === "value") el.value = value;
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
    return el;
  }

  function text(el, value) {
    const s = value === null || value === undefined ? "" : String(value);
    if (el.textContent !== s) el.textContent = s;
  }

  function jobHref(id) {
    return "#/jobs/" + encodeURIComponent(id);
  }

  function shortId(id) {
    return String(id).slice(0, 8);
  }

  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const today = new Date();
    return d.toDateString() === today.toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function timeEl(iso) {
    return h("time", { datetime: iso || null, title: iso || null }, fmtTime(iso));
  }

  function fmtSeconds(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
    if (seconds < 0.001) return "< 1 ms";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 10) return seconds.toFixed(2) + " s";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    const s = Math.round(seconds);
    if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  }

  function elapsedSince(iso) {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? null : Math.max(0, (Date.now() - t) / 1000);
  }

  function duration(job) {
    if (job.execution_time !== null && job.execution_time !== undefined) {
      return fmtSeconds(job.execution_time);
    }
    if (job.started_at && !TERMINAL.has(job.status)) return fmtSeconds(elapsedSince(job.started_at)) + "…";
    return "—";
  }

  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes); // unlike randomUUID, available over plain http too
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  function whenVisible(signal) {
    if (document.visibilityState !== "hidden") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        document.removeEventListener("visibilitychange", onChange);
        resolve();
      };
      const onChange = () => { if (document.visibilityState !== "hidden") done(); };
      document.addEventListener("visibilitychange", onChange);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  // Run `tick` now and then again after each pause until it returns false or the view goes.
  // `tick` may return a number: the pause before the next run, in milliseconds.
  function poll(signal, pauseMs, tick) {
    (async () => {
      while (!signal.aborted) {
        let next = pauseMs;
        try {
          const result = await tick();
          if (result === false) return;
          if (typeof result === "number") next = result;
        } catch (err) {
          if (isAbort(err)) return;
          if (!(err instanceof ApiError)) throw err;
        }
        await sleep(next, signal);
        await whenVisible(signal);
      }
    })().catch((err) => { if (!isAbort(err)) showBanner("error", "Dashboard error: " + err.message); });
  }

  function isAbort(err) {
    return err && err.name === "AbortError";
  }

  // --- API -----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(describeDetail(detail) || (status ? `HTTP ${status}` : "no answer"));
      this.name = "ApiError";
      this.status = status;
      this.detail = detail;
    }
  }

  // FastAPI's `detail`: a message, or a list of {loc, msg} for validation errors.
  function describeDetail(detail) {
    if (detail === null || detail === undefined) return "";
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map((e) => {
        const where = fieldPath(e && e.loc);
        return (where ? where + ": " : "") + cleanMsg(e && e.msg);
      }).join("; ");
    }
    return JSON.stringify(detail);
  }

  function fieldPath(loc) {
    if (!Array.isArray(loc)) return "";
    const parts = loc[0] === "body" || loc[0] === "query" || loc[0] === "path" ? loc.slice(1) : loc;
    return parts.map(String).join(".");
  }

  function cleanMsg(msg) {
    return String(msg === undefined ? "invalid" : msg).replace(/^Value error, /, "");
  }

  function apiKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  async function api(path, { method = "GET", body, signal, headers = {} } = {}) {
    const sent = { Accept: "application/json", ...headers };
    const key = apiKey();
    if (key) sent["X-API-Key"] = key;
    if (body !== undefined) sent["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (err) {
      if (isAbort(err)) throw err;
      showBanner("network", "Cannot reach the API: " + err.message + ". Retrying…");
      throw new ApiError(0, "cannot reach the API");
    }
    const raw = await response.text();
    let data = null;
    if (raw) {
      try {
        data = JSON.parse(raw);
      } catch {
        data = null;
      }
    }
    const detail = data && typeof data === "object" && "detail" in data ? data.detail : raw.slice(0, 300);
    if (response.status === 401) {
      showBanner("auth", "The API wants an API key (401" + (detail ? ": " + describeDetail(detail) : "") +
        "). Enter one under “API key” at the top.", true);
    } else if (response.status === 403) {
      showBanner("auth", "The API key was refused for this (403" + (detail ? ": " + describeDetail(detail) : "") +
        "). Check the key under “API key” at the top.", true);
    } else {
      clearBanner("network");
      if (response.ok) clearBanner("auth");
    }
    if (!response.ok) throw new ApiError(response.status, detail);
    return data;
  }

  // --- banner (auth and connection problems) -------------------------------------------

  let bannerKind = null;

  function showBanner(kind, message, openKey = false) {
    const banner = document.getElementById("banner");
    bannerKind = kind;
    banner.dataset.kind = kind;
    text(banner, message);
    banner.hidden = false;
    if (openKey) document.getElementById("apikey").open = true;
  }

  function clearBanner(kind) {
    if (bannerKind !== kind) return;
    const banner = document.getElementById("banner");
    banner.hidden = true;
    text(banner, "");
    bannerKind = null;
  }

  // --- shared pieces -------------------------------------------------------------------

  function statusBadge(status) {
    const el = h("span", { class: "badge" });
    setStatus(el, status);
    return el;
  }

  function setStatus(el, status) {
    el.dataset.status = status;
    text(el, status);
  }

  function progressBar() {
    const fill = h("span", { class: "bar-fill" });
    const label = h("span", { class: "bar-label" });
    const el = h("div", { class: "bar", role: "progressbar", "aria-valuemin": "0" }, fill, label);
    return {
      el,
      update(job) {
        const done = (job.progress && job.progress.completed_nodes) || 0;
        const total = job.progress ? job.progress.total_nodes : null;
        el.dataset.status = job.status;
        el.setAttribute("aria-valuenow", String(done));
        if (total) {
          el.setAttribute("aria-valuemax", String(total));
          fill.style.width = Math.min(100, (done / total) * 100) + "%";
          text(label, `${done}/${total}`);
        } else {
          el.removeAttribute("aria-valuemax");
          fill.style.width = job.status === "completed" ? "100%" : "0%";
          text(label, job.status === "pending" ? waitingText(job) : `${done}/?`);
        }
        el.setAttribute("aria-label", `${label.textContent} nodes`);
      },
    };
  }

  // Why a pending job is held back by the admission limits, and its place in line.
  function waitingText(job) {
    if (!job.waiting_reason) return "waiting";
    const place = job.position ? ` (#${job.position})` : "";
    return `waiting: ${job.waiting_reason}${place}`;
  }

  // The project's pipelines, fetched once a page load (and again for another queue).
  const pipelineCache = new Map(); // queue -> Promise<{items} | {unavailable: message}>

  function loadPipelines(queue) {
    const key = queue || "";
    if (!pipelineCache.has(key)) {
      const query = queue ? "?queue=" + encodeURIComponent(queue) : "";
      const promise = api("/pipelines" + query).then(
        (data) => {
          const items = Array.isArray(data && data.items) ? data.items : [];
          if (items.length) return { items };
          pipelineCache.delete(key); // workers may report later: ask again next time
          return {
            unavailable: data && data.refreshed_at
              ? "The project lists no pipelines: type a name."
              : "No worker has reported this queue's pipelines yet: type a name.",
          };
        },
        (err) => {
          pipelineCache.delete(key); // not cached: retry on the next form
          return {
            unavailable: err.status === 404
              ? "This API does not list pipelines (GET /pipelines answered 404): type a name."
              : "Could not load the pipeline list (" + err.message + "): type a name.",
          };
        },
      );
      pipelineCache.set(key, promise);
    }
    return pipelineCache.get(key);
  }

  // --- the jobs page -------------------------------------------------------------------

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

  function jobsPage(view, signal) {
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
        if (createdAt !== job.created_at) {
          createdAt = job.created_at;
          created.replaceChildren(timeEl(job.created_at));
        }
        text(took, duration(job));
      },
    };
  }

  // --- the job page --------------------------------------------------------------------

  function jobPage(view, id, signal) {
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
    const log = logTail(id, signal);
    view.append(
      h("p", {}, h("a", { href: "#/", class: "back" }, "← All jobs")),
      h("section", { class: "card job-head" },
        h("div", { class: "job-title-row" }, title, badge),
        h("p", { class: "mono muted job-id" }, id),
        h("div", { class: "job-progress" }, bar.el, cancelArea),
        notice, errorBox, facts, attemptsBox),
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
      title.replaceChildren(h("span", { class: "pipeline-name" }, job.pipeline_name));
      setStatus(badge, job.status);
      bar.update(job);
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

  function logTail(id, signal) {
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

    function add(chunk, note = false) {
      const node = note ? h("span", { class: "log-note" }, chunk) : document.createTextNode(chunk);
      pre.append(node);
      chars += chunk.length;
      while (chars > LOG_MAX_CHARS && pre.firstChild) {
        chars -= pre.firstChild.textContent.length;
        pre.firstChild.remove();
      }
    }

    poll(signal, LOG_IDLE_MS, async () => {
      let chunk;
      try {
        chunk = await api(`/jobs/${encodeURIComponent(id)}/logs?offset=${offset}`, { signal });
      } catch (err) {
        if (err.status === 404 || err.status === 422) return false; // the job page says so
        throw err;
      }
      if (chunk.offset > offset) {
        add(`\n[… ${chunk.offset - offset} bytes of output were not kept …]\n`, true);
      }
      if (chunk.data) add(chunk.data);
      offset = chunk.next_offset;
      if (follow.checked && chunk.data) pre.scrollTop = pre.scrollHeight;
      text(state, chunk.complete ? `complete · ${offset} bytes` : `following · ${offset} bytes`);
      pre.dataset.complete = String(chunk.complete);
      if (chunk.complete) return false;
      return chunk.data ? 100 : LOG_IDLE_MS; // more may be waiting: read on at once
    });
    return { el };
  }

  // --- API key and routing -------------------------------------------------------------

  function setupApiKey() {
    const form = document.getElementById("apikey-form");
    const input = document.getElementById("apikey-input");
    const state = document.getElementById("apikey-state");
    const showState = () => text(state, apiKey() ? "set" : "none");
    input.value = apiKey();
    showState();
    const store = (value) => {
      try {
        if (value) localStorage.setItem(KEY_STORAGE, value);
        else localStorage.removeItem(KEY_STORAGE);
      } catch {
        showBanner("error", "This browser does not let the dashboard keep the key (localStorage).");
      }
      showState();
      clearBanner("auth");
      document.getElementById("apikey").open = false;
      route();
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      store(input.value.trim());
    });
    document.getElementById("apikey-clear").addEventListener("click", () => {
      input.value = "";
      store("");
    });
  }

  let currentView = null;

  function route() {
    if (currentView) currentView.abort();
    currentView = new AbortController();
    const view = document.getElementById("view");
    view.replaceChildren();
    const match = location.hash.match(/^#\/jobs\/([^/?#]+)$/);
    if (match) {
      let id;
      try {
        id = decodeURIComponent(match[1]);
      } catch {
        id = match[1];
      }
      jobPage(view, id, currentView.signal);
    } else {
      jobsPage(view, currentView.signal);
    }
    window.scrollTo(0, 0);
  }

  setupApiKey();
  window.addEventListener("hashchange", route);
  route();
})();
