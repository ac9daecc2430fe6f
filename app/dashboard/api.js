// @ts-check
// The public API (/api/v1) from the browser: requests with the API key, errors, the banner.
import { isAbort, sleep, text, whenVisible } from "./dom.js";

const API = "api/v1"; // relative, so the dashboard also works behind a path prefix
const KEY_STORAGE = "kedro-gateway.api-key";

export class ApiError extends Error {
  constructor(status, detail) {
    super(describeDetail(detail) || (status ? `HTTP ${status}` : "no answer"));
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

// FastAPI's `detail`: a message, or a list of {loc, msg} for validation errors.
export function describeDetail(detail) {
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

export function fieldPath(loc) {
  if (!Array.isArray(loc)) return "";
  const parts = loc[0] === "body" || loc[0] === "query" || loc[0] === "path" ? loc.slice(1) : loc;
  return parts.map(String).join(".");
}

export function cleanMsg(msg) {
  return String(msg === undefined ? "invalid" : msg).replace(/^Value error, /, "");
}

/** Keep the key for this browser tab's session only (or forget it); false if refused. */
export function storeApiKey(value) {
  try {
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
    return true;
  } catch {
    return false;
  }
}

export function apiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export async function api(path, { method = "GET", body, signal, headers = {} } = {}) {
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

export function showBanner(kind, message, openKey = false) {
  const banner = document.getElementById("banner");
  bannerKind = kind;
  banner.dataset.kind = kind;
  text(banner, message);
  banner.hidden = false;
  if (openKey) document.getElementById("apikey").open = true;
}

export function clearBanner(kind) {
  if (bannerKind !== kind) return;
  const banner = document.getElementById("banner");
  banner.hidden = true;
  text(banner, "");
  bannerKind = null;
}

// The project's pipelines, fetched once a page load (and again for another queue).
const pipelineCache = new Map(); // queue -> Promise<{items} | {unavailable: message}>

export function loadPipelines(queue) {
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

// Run `tick` now and then again after each pause until it returns false or the view goes.
// `tick` may return a number: the pause before the next run, in milliseconds.
export function poll(signal, pauseMs, tick) {
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

/**
 * Follow a job's output as Server-Sent Events (GET /jobs/{id}/logs?follow=true).
 * fetch, not EventSource: EventSource cannot send the X-API-Key header. Reconnects from
 * the last event id until the `end` event, which carries the terminal job.
 * @param {string} id
 * @param {number} offset
 * @param {AbortSignal} signal
 * @param {{onData: (data: string, offset: number, nextOffset: number) => void,
 *          onEnd: (job: any) => void, onState: (state: string) => void}} on
 */
export async function followLog(id, offset, signal, on) {
  let next = offset;
  while (!signal.aborted) {
    const headers = { Accept: "text/event-stream" };
    const key = apiKey();
    if (key) headers["X-API-Key"] = key;
    let response;
    try {
      response = await fetch(`${API}/jobs/${encodeURIComponent(id)}/logs?follow=true&offset=${next}`,
        { headers, signal, cache: "no-store" });
    } catch (err) {
      if (isAbort(err)) return;
      on.onState("reconnecting");
      await sleep(2000, signal);
      continue;
    }
    if (response.status === 404 || response.status === 422) return;
    if (!response.ok || !response.body) {
      await response.text().catch(() => "");
      on.onState(response.status === 429 ? "waiting for a free stream" : "reconnecting");
      await sleep(2000, signal);
      await whenVisible(signal);
      continue;
    }
    on.onState("following");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { type: "message", data: /** @type {string[]} */ ([]), id: "" };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        // Lines end with \r\n, \n or \r; a \r at the very end may be half of a \r\n.
        const lines = buffer.split(/\r\n|\n|\r(?!$)/);
        buffer = lines.pop() || "";
        for (const line of lines) {
          if (line === "") {
            if (event.type === "log" && event.data.length) {
              const data = event.data.join("\n");
              const end = Number(event.id) || next;
              on.onData(data, end - new TextEncoder().encode(data).length, end);
              next = end;
            } else if (event.type === "end") {
              on.onEnd(JSON.parse(event.data.join("\n")));
              return;
            }
            event = { type: "message", data: [], id: "" };
          } else if (!line.startsWith(":")) {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") event.type = val;
            else if (field === "data") event.data.push(val);
            else if (field === "id") event.id = val;
          }
        }
      }
    } catch (err) {
      if (isAbort(err)) return;
    }
    on.onState("reconnecting");
    await sleep(500, signal);
  }
}
