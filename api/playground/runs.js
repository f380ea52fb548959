// Runs across the threads this browser created (the API lists runs per thread only):
// status, queue wait, duration, last error; for operators.

import { api, ApiError } from "./api.js";
import { attempt, clear, duration, field, h, note, statusBadge, time } from "./dom.js";
import { store } from "./state.js";

const STATUSES = ["all", "queued", "in_progress", "requires_action", "cancelling", "completed", "failed", "cancelled", "expired", "incomplete"];

export async function show(main) {
  const filter = h("select", { onchange: () => render() }, STATUSES.map((s) => h("option", { value: s }, s.replace("_", " "))));
  const auto = h("input", { type: "checkbox" });
  const table = h("div.table-wrap");
  const summary = h("p.meta", { role: "status" });
  let runs = [];
  let timer = null;

  const render = () => {
    const shown = filter.value === "all" ? runs : runs.filter((r) => r.status === filter.value);
    const tally = new Map();
    for (const r of runs) tally.set(r.status, (tally.get(r.status) || 0) + 1);
    const counts = [...tally].map(([s, n]) => `${n} ${s.replace("_", " ")}`);
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    summary.textContent = `${plural(runs.length, "run")} in ${plural(store.threads.length, "thread")}` +
      `${counts.length ? `: ${counts.join(", ")}` : ""}.`;
    if (!shown.length) return clear(table, note(runs.length ? "No run has this status." : "Runs of the threads you start in this browser appear here."));
    clear(table, h("table", { "aria-label": "Runs" },
      h("thead", {}, h("tr", {}, ["Run", "Thread", "Status", "Model", "Created", "Queued for", "Ran for", "Tokens", "Last error"].map((t) => h("th", {}, t)))),
      h("tbody", {}, shown.map((r) => h("tr", { dataset: { id: r.id, status: r.status } },
        h("td.mono", {}, r.id), h("td.mono", {}, h("a", { href: `#/threads/${r.thread_id}` }, r.thread_id)),
        h("td", {}, statusBadge(r.status)), h("td", {}, r.model), h("td", {}, time(r.created_at)),
        h("td.num", {}, r.started_at ? duration(r.started_at - r.created_at) : ""),
        h("td.num", {}, ranFor(r)), h("td.num", {}, r.usage?.total_tokens ?? ""),
        h("td", {}, r.last_error ? `${r.last_error.code}: ${r.last_error.message}` : ""))))));
  };

  const load = async () => {
    const lists = await attempt(() => Promise.all(store.threads.map(async (t) => {
      try {
        return await api.all(`/threads/${t.id}/runs?order=desc`);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) { store.forgetThread(t.id); return []; }
        throw error;
      }
    })));
    if (!lists) return;
    runs = lists.flat().sort((a, b) => b.created_at - a.created_at);
    render();
  };

  auto.addEventListener("change", () => {
    clearInterval(timer);
    timer = auto.checked ? setInterval(load, 2000) : null;
  });
  main.append(h("section.panel.wide", { "aria-labelledby": "runs-title" },
    h("h2", { id: "runs-title" }, "Runs"),
    h("div.toolbar", {}, field("Status", filter), h("label.check", {}, auto, " Refresh every 2 s"),
      h("button", { type: "button", onclick: load }, "Refresh")),
    summary, table));
  await load();
  return () => clearInterval(timer);
}

function ranFor(run) {
  const end = run.completed_at || run.failed_at || run.cancelled_at;
  if (!run.started_at) return "";
  return end ? duration(end - run.started_at) : `${duration(Math.round(Date.now() / 1000) - run.started_at)} so far`;
}
