// Every run of the project, across all its threads, newest first: Assistd's own
// GET /v1/assistd/runs (OpenAI's API lists runs per thread only). Status, assistant, thread,
// model, queue wait, duration, tokens, last error; a run opens its thread. For operators too.

import { api } from "./api.js";
import { attempt, clear, duration, field, h, note, statusBadge, time } from "./dom.js";
import { isActive } from "./timeline.js";

const STATUSES = ["all", "queued", "in_progress", "requires_action", "cancelling", "completed", "failed", "cancelled", "expired", "incomplete"];
const PAGE = 20;
const REFRESH_MS = 2000;

export async function show(main) {
  const view = new RunsView(main);
  await Promise.all([view.nameAssistants(), view.load()]);
  return () => view.leave();
}

class RunsView {
  constructor(main) {
    this.runs = [];
    this.hasMore = false;
    this.names = new Map(); // assistant id -> name
    this.timer = null;
    this.generation = 0; // a newer load makes an older one's answer stale
    this.filter = h("select", { onchange: () => this.load() },
      STATUSES.map((s) => h("option", { value: s }, s.replace("_", " "))));
    this.table = h("div.table-wrap");
    this.summary = h("p.meta", { role: "status" });
    this.more = h("button", { type: "button", hidden: true, onclick: () => this.loadMore() }, "Load more");
    main.append(h("section.panel.wide", { "aria-labelledby": "runs-title" },
      h("h2", { id: "runs-title" }, "Runs"),
      h("div.toolbar", {}, field("Status", this.filter),
        h("button", { type: "button", onclick: () => this.load(Math.max(PAGE, this.runs.length)) }, "Refresh")),
      this.summary, this.table, h("div.buttons", {}, this.more)));
  }

  /** Names for the assistant column: one page of assistants is enough (an id stands in for the rest). */
  async nameAssistants() {
    const page = await attempt(() => api.get("/assistants?limit=100"));
    for (const a of page?.data || []) this.names.set(a.id, a.name || a.id);
    if (this.runs.length) this.render();
  }

  path(after) {
    const params = new URLSearchParams({ limit: PAGE, order: "desc" });
    if (this.filter.value !== "all") params.set("status", this.filter.value);
    if (after) params.set("after", after);
    return `/assistd/runs?${params}`;
  }

  /** The newest `count` runs (a refresh reloads as many as are shown), then a refresh while any is active. */
  async load(count = PAGE) {
    const generation = ++this.generation;
    clearTimeout(this.timer);
    const got = await attempt(async () => {
      const runs = [];
      let page = { has_more: true, last_id: null };
      while (page.has_more && runs.length < count) {
        page = await api.get(this.path(page.last_id));
        runs.push(...page.data);
        if (!page.data.length) break;
      }
      return { runs, hasMore: page.has_more };
    });
    if (!got || generation !== this.generation) return;
    ({ runs: this.runs, hasMore: this.hasMore } = got);
    this.render();
    if (this.runs.some(isActive)) this.timer = setTimeout(() => this.load(this.runs.length), REFRESH_MS);
  }

  async loadMore() {
    const generation = this.generation;
    this.more.disabled = true;
    const page = await attempt(() => api.get(this.path(this.runs.at(-1)?.id)));
    this.more.disabled = false;
    if (!page || generation !== this.generation) return;
    this.runs.push(...page.data);
    this.hasMore = page.has_more;
    this.render();
  }

  render() {
    const tally = new Map();
    for (const r of this.runs) tally.set(r.status, (tally.get(r.status) || 0) + 1);
    const counts = [...tally].map(([s, n]) => `${n} ${s.replace("_", " ")}`);
    this.summary.textContent = `${this.runs.length} run${this.runs.length === 1 ? "" : "s"}` +
      `${this.hasMore ? " shown, more to load" : ""}${counts.length ? `: ${counts.join(", ")}` : ""}.` +
      `${this.runs.some(isActive) ? " Refreshing while runs are active." : ""}`;
    this.more.hidden = !this.hasMore;
    if (!this.runs.length) {
      return clear(this.table, note(this.filter.value === "all" ? "No runs yet: the runs of every thread of this project appear here."
        : "No run has this status."));
    }
    clear(this.table, h("table", { "aria-label": "Runs" },
      h("thead", {}, h("tr", {}, ["Run", "Status", "Assistant", "Thread", "Model", "Created", "Queued for", "Ran for", "Tokens", "Last error"]
        .map((t) => h("th", {}, t)))),
      h("tbody", {}, this.runs.map((r) => this.row(r)))));
  }

  /** One run; a click anywhere on it opens its thread at the run. */
  row(r) {
    const href = `#/threads/${encodeURIComponent(r.thread_id)}/${encodeURIComponent(r.id)}`;
    return h("tr.clickable", { dataset: { id: r.id, status: r.status, thread: r.thread_id },
      onclick: (e) => { if (!e.target.closest("a")) location.hash = href; } },
    h("td.mono", {}, h("a", { href, "aria-label": `Open run ${r.id} in its thread` }, r.id)),
    h("td", {}, statusBadge(r.status)), h("td", {}, this.names.get(r.assistant_id) || r.assistant_id),
    h("td.mono", {}, h("a", { href: `#/threads/${encodeURIComponent(r.thread_id)}` }, r.thread_id)),
    h("td", {}, r.model), h("td", {}, time(r.created_at)),
    h("td.num", {}, r.started_at ? duration(r.started_at - r.created_at) : ""),
    h("td.num", {}, ranFor(r)), h("td.num", {}, r.usage?.total_tokens ?? ""),
    h("td", {}, r.last_error ? `${r.last_error.code}: ${r.last_error.message}` : ""));
  }

  leave() {
    this.generation++;
    clearTimeout(this.timer);
  }
}

function ranFor(run) {
  const end = run.completed_at || run.failed_at || run.cancelled_at;
  if (!run.started_at) return "";
  return end ? duration(end - run.started_at) : `${duration(Math.round(Date.now() / 1000) - run.started_at)} so far`;
}
