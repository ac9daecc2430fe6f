// @ts-check
// The dashboard's entry point: the API key form, the navigation and the routes.
import { apiKey, clearBanner, showBanner, storeApiKey } from "./api.js";
import { text } from "./dom.js";
import { jobPage } from "./job.js";
import { jobsPage } from "./jobs.js";
import { pipelinePage } from "./pipeline.js";
import { workersPage } from "./workers.js";

/** @param {string} id */
function byId(id) {
  return /** @type {HTMLElement} */ (document.getElementById(id));
}

function setupApiKey() {
  const form = byId("apikey-form");
  const input = /** @type {HTMLInputElement} */ (byId("apikey-input"));
  const details = /** @type {HTMLDetailsElement} */ (byId("apikey"));
  const showState = () => text(byId("apikey-state"), apiKey() ? "set" : "none");
  input.value = apiKey();
  showState();
  const store = (/** @type {string} */ value) => {
    if (!storeApiKey(value)) {
      showBanner("error", "This browser does not let the dashboard keep the key (sessionStorage).");
    }
    showState();
    clearBanner("auth");
    details.open = false;
    route();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    store(input.value.trim());
  });
  byId("apikey-clear").addEventListener("click", () => {
    input.value = "";
    store("");
  });
}

/** @param {string} part */
function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** @type {AbortController | null} */
let currentView = null;

function route() {
  if (currentView) currentView.abort();
  currentView = new AbortController();
  const view = byId("view");
  view.replaceChildren();
  const hash = location.hash;
  let match;
  let section = "jobs";
  if ((match = hash.match(/^#\/jobs\/([^/?#]+)$/))) {
    jobPage(view, decode(match[1]), currentView.signal);
  } else if ((match = hash.match(/^#\/pipelines\/([^/?#]+)(?:\?queue=([^&#]+))?$/))) {
    section = "pipelines";
    pipelinePage(view, decode(match[1]), match[2] ? decode(match[2]) : "", currentView.signal);
  } else if (hash === "#/workers") {
    section = "workers";
    workersPage(view, currentView.signal);
  } else {
    jobsPage(view, currentView.signal);
  }
  for (const link of document.querySelectorAll(".nav a")) {
    if (link instanceof HTMLElement) {
      if (link.dataset.section === section) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }
  window.scrollTo(0, 0);
}

setupApiKey();
window.addEventListener("hashchange", route);
route();
