// @ts-check
// Kedro's log lines as they stream in: which node started, ended or failed when, and the
// lines each node logged while it ran. Times are Kedro's own (`asctime`, the worker's
// clock); only their differences are used, so the time zone does not matter.

const ASCTIME = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3}) /;
const RUNNING = /Running node: (.+?)\s*$/;
const COMPLETED = /Completed node: (.+?)\s*$/;
const FAILED = /Node (.+?) failed with error:/;
const MAX_NODE_LINES = 400;

/** @typedef {{start?: number, end?: number, failedAt?: number, error?: string}} NodeTimes */

export class RunLog {
  /** @param {{name: string}[]} nodes  the pipeline's nodes (to name `Running node:` texts) */
  constructor(nodes) {
    this.names = new Set(nodes.map((n) => n.name));
    /** @type {Map<string, NodeTimes>} */
    this.times = new Map();
    /** @type {Map<string, string[]>} */
    this.lines = new Map();
    /** @type {Set<string>} */
    this.running = new Set();
    this.partial = "";
    /** Kedro's clock at the last timed line and the browser's at its arrival. */
    this.lastLogged = NaN;
    this.lastArrival = NaN;
    /** The line that failed a node: kept to attach the exception text that follows. */
    this.pendingError = /** @type {string | null} */ (null);
  }

  /** @param {string} text */
  resolve(text) {
    if (this.names.has(text)) return text;
    const cut = text.indexOf(": ");
    const short = cut > 0 && !text.slice(0, cut).includes("(") ? text.slice(0, cut) : text;
    if (this.names.has(short)) return short;
    for (const name of this.names) if (name.endsWith("." + short)) return name;
    return short;
  }

  /** Kedro's clock now, estimated from the last timed line. */
  now() {
    return Number.isNaN(this.lastLogged) ? NaN : this.lastLogged + (Date.now() - this.lastArrival);
  }

  /** @param {string} chunk */
  feed(chunk) {
    const lines = (this.partial + chunk).split("\n");
    this.partial = lines.pop() || "";
    for (const line of lines) this.line(line);
  }

  /** @param {string} line */
  line(line) {
    const m = ASCTIME.exec(line);
    const at = m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]) : NaN;
    if (m) {
      this.lastLogged = at;
      this.lastArrival = Date.now();
      this.pendingError = null;
    } else if (this.pendingError) {
      const t = this.times.get(this.pendingError);
      if (t && line.trim() && !t.error?.includes("\n")) t.error = (t.error || "") + "\n" + line.trim();
    }
    let match;
    if ((match = RUNNING.exec(line))) {
      const name = this.resolve(match[1]);
      this.times.set(name, { start: at });
      this.lines.set(name, []);
      this.running.add(name);
    } else if ((match = COMPLETED.exec(line))) {
      const name = this.resolve(match[1]);
      this.add(name, line);
      const t = this.times.get(name) || {};
      t.end = at;
      this.times.set(name, t);
      this.running.delete(name);
      return;
    } else if ((match = FAILED.exec(line))) {
      const name = this.resolve(match[1]);
      const t = this.times.get(name) || {};
      t.failedAt = at;
      t.error = line.slice(line.indexOf("Node ")).trim();
      this.times.set(name, t);
      this.add(name, line);
      this.running.delete(name);
      this.pendingError = name;
      return;
    }
    for (const name of this.running) this.add(name, line);
  }

  /** @param {string} name @param {string} line */
  add(name, line) {
    let list = this.lines.get(name);
    if (!list) this.lines.set(name, (list = []));
    if (list.length < MAX_NODE_LINES) list.push(line);
    else if (list.length === MAX_NODE_LINES) list.push("[… more lines in the full output below …]");
  }
}
