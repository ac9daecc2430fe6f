// @ts-check
// The workers page: live workers, their queues, runner mode, running jobs, heartbeat age.
import { api, poll } from "./api.js";
import { REFRESH_MS, elapsedSince, fmtSeconds, h, jobHref, shortId, timeEl } from "./dom.js";

/**
 * @param {HTMLElement} view
 * @param {AbortSignal} signal
 */
export function workersPage(view, signal) {
  document.title = "Workers · Kedro job gateway";
  const tbody = h("tbody", {});
  const empty = h("p", { class: "muted empty", hidden: true }, "No worker has announced itself yet.");
  const updated = h("span", { class: "muted updated" });
  const showGone = h("input", { type: "checkbox", id: "show-gone" });
  view.append(h("section", { class: "card" },
    h("div", { class: "jobs-head" }, h("h1", {}, "Workers"),
      h("div", { class: "filters" }, h("label", { class: "check" }, showGone, " Show stopped and lost"), updated)),
    h("div", { class: "table-wrap" }, h("table", { id: "workers-table" },
      h("thead", {}, h("tr", {}, ["Worker", "State", "Queues", "Runner", "Running jobs", "Heartbeat", "Kedro", "Started"]
        .map((c) => h("th", { scope: "col" }, c)))),
      tbody)),
    empty));
  /** @type {any[]} */
  let workers = [];
  /** @type {Map<string, any[]>} */
  let runningBy = new Map();

  function render() {
    const shown = workers.filter((w) => showGone.checked || (w.alive && !w.stopped_at));
    tbody.replaceChildren(...shown.map((w) => {
      const state = w.stopped_at ? "stopped" : w.alive ? "alive" : "lost";
      const age = elapsedSince(w.last_seen_at);
      const jobs = runningBy.get(w.name) || [];
      return h("tr", { "data-worker": w.name, "data-state": state },
        h("td", {}, h("span", { class: "mono worker-name" }, w.name), h("span", { class: "hint" }, w.hostname)),
        h("td", {}, h("span", { class: "badge", "data-worker-state": state }, state),
          w.project_ok ? null : h("span", { class: "hint field-error" }, w.project_error || "project not loaded")),
        h("td", {}, (w.queues || []).join(", ") || "—"),
        h("td", {}, w.runner_mode || "—", w.warm_error ? h("span", { class: "hint" }, w.warm_error) : null),
        h("td", { class: "running-jobs" },
          h("span", { class: "num-pill" }, `${w.running_jobs}${w.concurrency ? ` / ${w.concurrency}` : ""}`),
          jobs.length ? h("span", { class: "job-links" }, jobs.map((j) =>
            h("a", { href: jobHref(j.id), class: "mono", title: j.pipeline_name }, `${j.pipeline_name} ${shortId(j.id)}`))) : null),
        h("td", { class: "num heartbeat", "data-age": age === null ? "" : String(Math.round(age)) },
          age === null ? "—" : fmtSeconds(age) + " ago"),
        h("td", {}, w.kedro_version || "—"),
        h("td", {}, timeEl(w.started_at)));
    }));
    empty.hidden = shown.length > 0;
    updated.textContent = "updated " + new Date().toLocaleTimeString();
  }

  showGone.addEventListener("change", render);
  poll(signal, REFRESH_MS, async () => {
    const [list, running] = await Promise.all([
      api("/workers", { signal }),
      api("/jobs?status=running&limit=100", { signal }),
    ]);
    workers = list.items || [];
    runningBy = new Map();
    for (const job of running.items || []) {
      if (!job.worker) continue;
      const key = workers.find((w) => w.name === job.worker || job.worker.startsWith(w.name))?.name || job.worker;
      runningBy.set(key, [...(runningBy.get(key) || []), job]);
    }
    render();
  });
}
