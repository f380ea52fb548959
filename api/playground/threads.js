// Threads: pick an assistant, write messages (with attachments), run with a streamed answer,
// answer function calls, cancel.

import { api, upload } from "./api.js";
import { attempt, clear, field, h, note, showError } from "./dom.js";
import { record, store } from "./state.js";
import { isActive, renderMessage, renderThread, RunView } from "./timeline.js";

const STEP_INCLUDE = "include[]=step_details.tool_calls[*].file_search.results[*].content";

/** `#/threads/{thread}/{run}` (from the runs view) opens the thread at that run. */
export async function show(main, [threadId, runId]) {
  const assistants = await attempt(() => api.all("/assistants?order=desc")) || [];
  const view = new ThreadView(main, assistants, threadId, runId);
  await Promise.all([view.load(), view.loadList()]);
  return () => view.leave();
}

class ThreadView {
  constructor(main, assistants, threadId, runId) {
    this.threadId = threadId || null;
    this.runId = runId || null;
    this.assistants = assistants;
    this.attachments = [];
    this.projectThreads = []; // GET /v1/assistd/threads: every client's, not only this browser's
    this.active = null; // {view: RunView, controller: AbortController}
    this.generation = 0;
    this.list = h("ul.thread-list");
    this.timeline = h("div.timeline", { "aria-live": "polite", "aria-busy": "false" });
    this.title = h("h2", {}, "New thread");
    this.runStatus = h("span.run-status", { role: "status" });
    this.cancelButton = h("button", { type: "button", hidden: true, onclick: () => this.cancel() }, "Cancel run");
    main.append(h("div.threads-view", {}, this.sidebar(), h("section.conversation", { "aria-labelledby": "thread-title" },
      h("header.conversation-head", {}, this.title, this.runStatus, this.cancelButton),
      this.timeline, this.composer())));
    this.title.id = "thread-title";
    this.renderList();
  }

  sidebar() {
    const select = h("select", { id: "assistant-select", onchange: () => { store.assistant = select.value; } },
      this.assistants.map((a) => h("option", { value: a.id }, `${a.name || "Untitled"} (${a.model})`)));
    if (this.assistants.some((a) => a.id === store.assistant)) select.value = store.assistant;
    this.assistantSelect = select;
    return h("aside.sidebar", {},
      this.assistants.length ? field("Assistant", select)
        : h("p.note", {}, "No assistant yet. ", h("a", { href: "#/assistants/new" }, "Create one"), " to run threads."),
      h("button.primary", { type: "button", onclick: () => { location.hash = "#/threads"; } }, "New thread"),
      h("h2", {}, "Threads"), this.list);
  }

  /** The project's newest threads, whoever created them (the titles are this browser's own). */
  async loadList() {
    try {
      this.projectThreads = (await api.get("/assistd/threads?limit=50")).data;
    } catch {
      return; // a convenience: the threads started here are still listed
    }
    this.renderList();
  }

  renderList() {
    const byId = new Map(this.projectThreads.map((t) => [t.id, { id: t.id, title: t.metadata?.title, created_at: t.created_at }]));
    for (const t of store.threads) byId.set(t.id, { ...t, title: t.title || byId.get(t.id)?.title });
    const threads = [...byId.values()].sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
    clear(this.list, threads.length ? threads.map((t) => h("li", {},
      h("a", { href: `#/threads/${t.id}`, "aria-current": t.id === this.threadId ? "page" : null },
        t.title || t.id, h("small", {}, t.id))))
      : h("li.note", {}, "No threads yet: write a message to start one."));
  }

  composer() {
    this.input = h("textarea", { name: "message", rows: 3, placeholder: "Write a message… (Enter sends, Shift+Enter for a new line)",
      onkeydown: (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.send(true); } } });
    this.chips = h("ul.chips", { "aria-label": "Attached files" });
    const picker = h("input", { type: "file", multiple: true, class: "visually-hidden", id: "attach-input",
      onchange: (e) => { this.attach([...e.target.files]); e.target.value = ""; } });
    this.sendButton = h("button.primary", { type: "submit" }, "Send and run");
    return h("form.composer", { onsubmit: (e) => { e.preventDefault(); this.send(true); } },
      field("Message", this.input), this.chips,
      h("div.buttons", {},
        this.sendButton,
        h("button", { type: "button", onclick: () => this.send(false) }, "Add without running"),
        picker, h("label.button", { htmlFor: "attach-input" }, "Attach files")));
  }

  async attach(files) {
    for (const file of files) {
      const entry = { name: file.name, id: null, tool: "file_search", progress: 0 };
      this.attachments.push(entry);
      this.renderChips();
      const uploaded = await attempt(() => upload(file, "assistants", (p) => { entry.progress = p; this.renderChips(); }));
      if (uploaded) {
        entry.id = uploaded.id;
        record("file.upload", { filename: file.name, purpose: "assistants" });
      } else this.attachments.splice(this.attachments.indexOf(entry), 1);
      this.renderChips();
    }
  }

  renderChips() {
    clear(this.chips, this.attachments.map((a) => {
      const tool = h("select", { "aria-label": `Tool for ${a.name}`, onchange: (e) => { a.tool = e.target.value; } },
        h("option", { value: "file_search" }, "file search"), h("option", { value: "code_interpreter" }, "code interpreter"));
      tool.value = a.tool;
      return h("li", {}, a.name, a.id ? tool : h("progress", { max: 1, value: a.progress, "aria-label": `Uploading ${a.name}` }),
        h("button.link", { type: "button", "aria-label": `Remove ${a.name}`,
          onclick: () => { this.attachments.splice(this.attachments.indexOf(a), 1); this.renderChips(); } }, "×"));
    }));
  }

  async load() {
    const generation = ++this.generation; // a newer load or a send makes this one stale
    if (!this.threadId) return this.title.replaceChildren("New thread");
    this.title.replaceChildren(store.threads.find((t) => t.id === this.threadId)?.title || this.threadId);
    const thread = `/threads/${this.threadId}`;
    const got = await attempt(async () => {
      const [messages, runs] = await Promise.all([api.all(`${thread}/messages?order=asc`), api.all(`${thread}/runs?order=asc`)]);
      const steps = new Map(await Promise.all(runs.map(async (r) =>
        [r.id, await api.all(`${thread}/runs/${r.id}/steps?order=asc&${STEP_INCLUDE}`)])));
      return { messages, runs, steps };
    });
    if (!got || generation !== this.generation) return;
    const items = renderThread(got, { onRequiresAction: (run) => this.actionForm(run) });
    clear(this.timeline, items.map((item) => item.el || item),
      got.messages.length ? null : note("No messages yet: write the first one below."));
    const last = items.filter((i) => i instanceof RunView).at(-1);
    if (last && isActive(last.run)) this.follow(last);
    const shown = this.runId && [...this.timeline.querySelectorAll(".run")].find((el) => el.dataset.id === this.runId);
    shown?.classList.add("highlight");
    if (shown) shown.scrollIntoView({ block: "center" });
    else this.timeline.lastElementChild?.scrollIntoView({ block: "end" });
  }

  async ensureThread(title) {
    if (this.threadId) return this.threadId;
    const thread = await api.post("/threads", {});
    record("thread.create", {});
    store.addThread(thread, title);
    this.threadId = thread.id;
    history.replaceState(null, "", `#/threads/${thread.id}`);
    this.title.replaceChildren(title || thread.id);
    this.timeline.replaceChildren();
    this.renderList();
    return thread.id;
  }

  async send(run) {
    const text = this.input.value.trim();
    const assistantId = this.assistantSelect?.value;
    if (!text) return this.input.focus();
    if (run && !assistantId) return showError("Create an assistant first (Assistants), then run the thread with it.");
    if (this.attachments.some((a) => !a.id)) return showError("Wait for the attachments to finish uploading.");
    this.generation++;
    this.setBusy(true);
    await attempt(async () => {
      const threadId = await this.ensureThread(text.slice(0, 60));
      const message = { role: "user", content: text };
      if (this.attachments.length) message.attachments = this.attachments.map((a) => ({ file_id: a.id, tools: [{ type: a.tool }] }));
      const created = await api.post(`/threads/${threadId}/messages`, message);
      this.input.value = "";
      this.attachments = [];
      this.renderChips();
      this.timeline.querySelector(".note")?.remove();
      this.timeline.append(renderMessage(created));
      if (!run) return record("message.create", { thread_id: threadId, message });
      record("run.stream", { thread_id: threadId, message, assistant_id: assistantId });
      const runView = new RunView({ id: "", status: "queued", model: "", created_at: 0 },
        { onRequiresAction: (r) => this.actionForm(r) });
      this.timeline.append(runView.el);
      try {
        await this.stream(runView, `/threads/${threadId}/runs`, { assistant_id: assistantId });
      } catch (error) {
        if (!runView.run.id) runView.el.remove(); // the run was refused: nothing to show for it
        throw error;
      }
    });
    this.setBusy(false);
  }

  /** Feeds a run's stream into its view until `done`; then shows the stored thread. */
  async stream(runView, path, body) {
    const controller = new AbortController();
    this.active = { view: runView, controller };
    this.setBusy(true);
    try {
      for await (const { event, data } of api.stream(path, body, controller.signal)) {
        const run = runView.apply(event, data);
        if (run) this.showStatus(run);
        if (event === "thread.message.delta") runView.el.scrollIntoView({ block: "end" });
      }
      if (!isActive(runView.run)) await this.load();
      else this.follow(runView);
    } catch (error) {
      if (error.name !== "AbortError") throw error;
    } finally {
      this.setBusy(false);
    }
  }

  /** A run we are not streaming (requires_action, or started elsewhere): show it, let it be cancelled. */
  follow(runView) {
    this.active = { view: runView, controller: null };
    this.showStatus(runView.run);
    if (runView.run.status !== "requires_action") this.poll(runView);
  }

  async poll(runView) {
    while (this.active?.view === runView && isActive(runView.run) && runView.run.status !== "requires_action") {
      await new Promise((r) => setTimeout(r, 1000));
      const run = await attempt(() => api.get(`/threads/${runView.run.thread_id}/runs/${runView.run.id}`));
      if (!run || this.active?.view !== runView) return;
      runView.setRun(run);
      this.showStatus(run);
    }
    if (this.active?.view === runView && !isActive(runView.run)) await this.load();
  }

  showStatus(run) {
    this.runStatus.textContent = run.id ? `Run ${run.status.replace("_", " ")}` : "";
    this.cancelButton.hidden = !isActive(run) || run.status === "cancelling";
  }

  setBusy(busy) {
    this.timeline.setAttribute("aria-busy", String(busy));
    this.sendButton.disabled = busy;
  }

  /** One output field per pending function call; submitting continues the run's stream. */
  actionForm(run) {
    const calls = run.required_action?.submit_tool_outputs?.tool_calls || [];
    const inputs = calls.map((call) => h("textarea", { rows: 2, required: true, dataset: { call: call.id } }));
    const form = h("form.tool-outputs", {
      "aria-label": "Function outputs",
      onsubmit: async (e) => {
        e.preventDefault();
        const tool_outputs = inputs.map((i) => ({ tool_call_id: i.dataset.call, output: i.value }));
        record("run.submit", { thread_id: run.thread_id, run_id: run.id, tool_outputs });
        form.querySelector("button[type=submit]").disabled = true;
        const runView = this.active?.view;
        await attempt(() => this.stream(runView, `/threads/${run.thread_id}/runs/${run.id}/submit_tool_outputs`, { tool_outputs }));
      },
    }, h("h4", {}, "The assistant called your functions"),
    calls.map((call, i) => h("fieldset", {},
      h("legend", {}, h("code", {}, call.function.name), ` (${call.id})`),
      h("pre", {}, call.function.arguments),
      field(`Output of ${call.function.name}`, inputs[i]))),
    h("button.primary", { type: "submit" }, "Submit outputs"));
    queueMicrotask(() => inputs[0]?.focus());
    return form;
  }

  async cancel() {
    const run = this.active?.view.run;
    if (!run?.id) return;
    await attempt(async () => {
      const cancelled = await api.post(`/threads/${run.thread_id}/runs/${run.id}/cancel`);
      record("run.cancel", { thread_id: run.thread_id, run_id: run.id });
      if (!this.active.controller) {
        this.active.view.setRun(cancelled);
        this.showStatus(cancelled);
        if (!isActive(cancelled)) await this.load();
        else this.poll(this.active.view);
      }
    });
  }

  leave() {
    this.active?.controller?.abort();
    this.active = null;
  }
}
