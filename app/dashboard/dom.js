// @ts-check
// DOM and formatting helpers. Every piece of text that comes from the API goes into the
// page as a text node or an attribute value, never as markup.

export const REFRESH_MS = 2000;
export const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

export function h(tag, attrs, ...children) {
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

export function text(el, value) {
  const s = value === null || value === undefined ? "" : String(value);
  if (el.textContent !== s) el.textContent = s;
}

export function jobHref(id) {
  return "#/jobs/" + encodeURIComponent(id);
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date();
  return d.toDateString() === today.toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

export function timeEl(iso) {
  return h("time", { datetime: iso || null, title: iso || null }, fmtTime(iso));
}

export function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 0.001) return "< 1 ms";
  if (seconds < 1) return Math.round(seconds * 1000) + " ms";
  if (seconds < 10) return seconds.toFixed(2) + " s";
  if (seconds < 60) return seconds.toFixed(1) + " s";
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

export function elapsedSince(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : Math.max(0, (Date.now() - t) / 1000);
}

export function duration(job) {
  if (job.execution_time !== null && job.execution_time !== undefined) {
    return fmtSeconds(job.execution_time);
  }
  if (job.started_at && !TERMINAL.has(job.status)) return fmtSeconds(elapsedSince(job.started_at)) + "…";
  return "—";
}

export function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes); // unlike randomUUID, available over plain http too
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

export function whenVisible(signal) {
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


export function isAbort(err) {
  return err && err.name === "AbortError";
}

export function statusBadge(status) {
  const el = h("span", { class: "badge" });
  setStatus(el, status);
  return el;
}

export function setStatus(el, status) {
  el.dataset.status = status;
  text(el, status);
}

export function progressBar() {
  const fill = h("span", { class: "bar-fill" });
  const label = h("span", { class: "bar-label" });
  const el = h("div", { class: "bar", role: "progressbar", "aria-valuemin": "0" }, fill, label);
  return {
    el,
    /**
     * @param {any} job
     * @param {number | null} [planned]  the run's node count when the job does not say yet
     */
    update(job, planned = null) {
      const done = (job.progress && job.progress.completed_nodes) || 0;
      const total = (job.progress && job.progress.total_nodes) || planned || null;
      el.dataset.status = job.status;
      el.setAttribute("aria-valuenow", String(done));
      if (total) {
        el.setAttribute("aria-valuemax", String(total));
        fill.style.width = Math.min(100, (done / total) * 100) + "%";
        text(label, `${done}/${total}`);
      } else {
        el.removeAttribute("aria-valuemax");
        fill.style.width = job.status === "completed" ? "100%" : "0%";
        text(label, job.status === "pending" ? "waiting" : `${done}/?`);
      }
      if (job.status === "pending" && job.waiting_reason) text(label, waitingText(job));
      el.setAttribute("aria-label", `${label.textContent} nodes`);
    },
  };
}

/**
 * Why a pending job is held back by the admission limits, and its place in line.
 * @param {{waiting_reason?: string | null, position?: number | null}} job
 */
function waitingText(job) {
  const place = job.position ? ` (#${job.position})` : "";
  return `waiting: ${job.waiting_reason}${place}`;
}
