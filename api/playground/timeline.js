// Renders a thread: user messages, and each run with its steps (tool calls, code, file search),
// its messages, status and usage. A RunView also follows a run live from its stream events.

import { fileURL } from "./api.js";
import { duration, h, statusBadge } from "./dom.js";

const TERMINAL = new Set(["completed", "failed", "cancelled", "expired", "incomplete"]);
const IDENTITY = new Set(["id", "type", "index", "object", "file_id", "status", "role"]);

export function isActive(run) {
  return run && !TERMINAL.has(run.status);
}

/** Folds a streamed delta into an object, as the SDKs do: strings grow, indexed items merge. */
export function merge(target, delta) {
  for (const [key, value] of Object.entries(delta)) {
    const current = target[key];
    if (Array.isArray(value)) {
      target[key] = Array.isArray(current) ? current : [];
      for (const item of value) {
        const at = typeof item?.index === "number" ? item.index : target[key].length;
        const slot = target[key][at];
        target[key][at] = slot && typeof item === "object" ? merge(slot, item) : structuredClone(item);
      }
    } else if (value && typeof value === "object") {
      target[key] = merge(current && typeof current === "object" ? current : {}, value);
    } else if (typeof value === "string" && typeof current === "string" && !IDENTITY.has(key)) {
      target[key] = current + value;
    } else {
      target[key] = value;
    }
  }
  return target;
}

export function pretty(json) {
  try { return JSON.stringify(JSON.parse(json), null, 2); } catch { return json || ""; }
}

function image(fileId) {
  const img = h("img.output-image", { alt: `Image ${fileId}`, loading: "lazy" });
  fileURL(fileId).then((url) => { img.src = url; }, () => { img.alt = `Image ${fileId} could not be loaded`; });
  return img;
}

/** Text with its annotations as numbered links to the cited files. */
function annotatedText(text, notes) {
  const out = h("div.text");
  const marks = [...(text.annotations || [])].filter(Boolean).sort((a, b) => a.start_index - b.start_index);
  let at = 0;
  for (const mark of marks) {
    const fileId = mark.file_citation?.file_id || mark.file_path?.file_id;
    if (!fileId || mark.start_index < at) continue;
    out.append(text.value.slice(at, mark.start_index));
    notes.push({ fileId, quote: mark.text, kind: mark.type });
    const n = notes.length;
    out.append(h("a.citation", { href: `#/files/${encodeURIComponent(fileId)}`, title: `Cited file ${fileId}` }, `[${n}]`));
    at = mark.end_index;
  }
  out.append(text.value.slice(at));
  return out;
}

export function renderContent(message) {
  const notes = [];
  const parts = (message.content || []).filter(Boolean).map((part) => {
    if (part.type === "text") return annotatedText(part.text || { value: "" }, notes);
    if (part.type === "image_file") return image(part.image_file.file_id);
    if (part.type === "image_url") return h("a", { href: part.image_url.url, rel: "noreferrer", target: "_blank" }, "Image link");
    if (part.type === "refusal") return h("p.refusal", {}, part.refusal);
    return null;
  });
  const footnotes = notes.length ? h("ol.citations", { "aria-label": "Citations" }, notes.map((note) =>
    h("li", {}, h("a", { href: `#/files/${encodeURIComponent(note.fileId)}` }, note.fileId),
      note.kind === "file_path" ? " (file written by the assistant)" : ""))) : null;
  return [parts, footnotes];
}

export function renderMessage(message) {
  const attachments = (message.attachments || []).map((a) =>
    h("li", {}, h("a", { href: `#/files/${encodeURIComponent(a.file_id)}` }, a.file_id),
      ` (${(a.tools || []).map((t) => t.type.replace("_", " ")).join(", ") || "no tool"})`));
  return h("article.message", { dataset: { role: message.role, id: message.id } },
    h("h3.role", {}, message.role === "user" ? "You" : "Assistant"),
    h("div.content", { "data-testid": "message-content" }, renderContent(message)),
    attachments.length ? h("ul.attachments", { "aria-label": "Attachments" }, attachments) : null,
    message.status === "incomplete" ? h("p.note", {}, `Incomplete: ${message.incomplete_details?.reason || ""}`) : null);
}

function functionCall(call) {
  const fn = call.function || {};
  return h("div.call", { dataset: { kind: "function" } },
    h("h4", {}, "Function ", h("code", {}, fn.name || "…")),
    h("div.label", {}, "Arguments"), h("pre", {}, pretty(fn.arguments)),
    h("div.label", {}, "Output"),
    fn.output === null || fn.output === undefined ? h("p.note", {}, "Waiting for the output.") : h("pre.output", {}, fn.output));
}

function codeCall(call) {
  const ci = call.code_interpreter || {};
  const outputs = (ci.outputs || []).filter(Boolean).map((o) =>
    o.type === "logs" ? h("pre.logs", {}, o.logs) : o.type === "image" ? image(o.image.file_id) : null);
  return h("div.call", { dataset: { kind: "code_interpreter" } },
    h("h4", {}, "Code interpreter"), h("pre.code", {}, ci.input || ""),
    outputs.length ? [h("div.label", {}, "Output"), outputs] : null);
}

function searchCall(call) {
  const results = call.file_search?.results || [];
  const rows = results.map((r) => h("tr", {},
    h("td", {}, h("a", { href: `#/files/${encodeURIComponent(r.file_id)}` }, r.file_name || r.file_id)),
    h("td.num", {}, Number(r.score).toFixed(3)),
    h("td", {}, (r.content || []).map((c) => c.text).join(" ").slice(0, 300))));
  return h("div.call", { dataset: { kind: "file_search" } }, h("h4", {}, "File search"),
    rows.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Score"), h("th", {}, "Content"))),
      h("tbody", {}, rows)) : h("p.note", {}, "No results."));
}

export function renderToolCalls(step) {
  const calls = (step.step_details?.tool_calls || []).filter(Boolean).map((call) =>
    call.type === "function" ? functionCall(call) : call.type === "code_interpreter" ? codeCall(call) : searchCall(call));
  return h("section.step", { dataset: { id: step.id, type: "tool_calls" }, "aria-label": "Tool calls" },
    h("div.step-head", {}, "Tool calls ", statusBadge(step.status || "in_progress")),
    calls, step.last_error ? h("p.error", {}, step.last_error.message) : null);
}

function runDuration(run) {
  const end = run.completed_at || run.failed_at || run.cancelled_at;
  if (!end) return "";
  return duration(end - (run.started_at || run.created_at));
}

export function runSummary(run) {
  const usage = run.usage;
  return [
    h("span.run-id", {}, run.id), statusBadge(run.status), h("span", {}, run.model),
    runDuration(run) ? h("span", {}, runDuration(run)) : null,
    usage ? h("span.usage", { "data-testid": "usage" },
      `${usage.prompt_tokens} in · ${usage.completion_tokens} out · ${usage.total_tokens} tokens`) : null,
  ];
}

/** One run in the timeline: header, steps in order, messages in their steps, the pending-action form. */
export class RunView {
  constructor(run, { onRequiresAction } = {}) {
    this.run = run;
    this.steps = new Map();
    this.messages = new Map();
    this.onRequiresAction = onRequiresAction;
    this.head = h("header.run-head");
    this.body = h("div.run-body");
    this.problem = h("div");
    this.action = h("div.action");
    this.el = h("section.run", { dataset: { id: run.id }, "aria-label": `Run ${run.id}` },
      this.head, this.body, this.problem, this.action);
    this.setRun(run);
  }

  setRun(run) {
    this.run = run;
    this.el.dataset.status = run.status;
    this.head.replaceChildren(...runSummary(run).filter(Boolean));
    const error = run.last_error;
    const reason = run.incomplete_details?.reason;
    this.problem.replaceChildren(...[
      error ? h("p.error", { role: "status" }, `Failed: ${error.message} (${error.code})`) : null,
      reason ? h("p.note", {}, `Incomplete: ${reason.replaceAll("_", " ")}`) : null,
    ].filter(Boolean));
    if (run.status !== "requires_action") this.action.replaceChildren();
    else if (this.onRequiresAction && !this.action.firstChild) this.action.append(this.onRequiresAction(run));
  }

  setStep(step) {
    const known = this.steps.get(step.id);
    this.steps.set(step.id, step);
    if (step.type === "message_creation") {
      const messageId = step.step_details.message_creation.message_id;
      if (!known) this.body.append(this.slot(messageId));
      return;
    }
    const el = renderToolCalls(step);
    const old = this.body.querySelector(`[data-id="${step.id}"]`);
    old ? old.replaceWith(el) : this.body.append(el);
  }

  stepDelta(id, delta) {
    const step = this.steps.get(id);
    if (step) this.setStep(merge(step, delta));
  }

  slot(messageId) {
    let slot = this.body.querySelector(`[data-message="${messageId}"]`);
    if (!slot) {
      slot = h("div.slot", { dataset: { message: messageId } });
      this.body.append(slot);
    }
    return slot;
  }

  setMessage(message) {
    this.messages.set(message.id, message);
    this.slot(message.id).replaceChildren(renderMessage(message));
  }

  messageDelta(id, delta) {
    const message = this.messages.get(id) || { id, role: "assistant", content: [] };
    this.setMessage(merge(message, delta));
  }

  /** Applies one stream event; returns the run when it changed. */
  apply(event, data) {
    if (!data) return null;
    if (event === "error") {
      this.problem.append(h("p.error", { role: "alert" }, `Stream error: ${data.message || data.code}`));
    } else if (event.startsWith("thread.run.step.")) {
      event.endsWith(".delta") ? this.stepDelta(data.id, data.delta) : this.setStep(data);
    } else if (event.startsWith("thread.message.")) {
      event.endsWith(".delta") ? this.messageDelta(data.id, data.delta) : this.setMessage(data);
    } else if (event.startsWith("thread.run.")) {
      this.setRun(data);
      return data;
    }
    return null;
  }
}

/** A whole thread, oldest first: user messages between the runs they led to. */
export function renderThread({ messages, runs, steps }, options) {
  const byId = new Map(messages.map((m) => [m.id, m]));
  const shown = new Set();
  const items = [
    ...messages.filter((m) => !m.run_id).map((m) => ({ at: m.created_at, order: 0, el: () => renderMessage(m) })),
    ...runs.map((run) => ({
      at: run.created_at, order: 1, el: () => {
        const view = new RunView(run, options);
        for (const step of steps.get(run.id) || []) {
          view.setStep(step);
          if (step.type === "message_creation") {
            const message = byId.get(step.step_details.message_creation.message_id);
            if (message) { view.setMessage(message); shown.add(message.id); }
          }
        }
        for (const m of messages.filter((m) => m.run_id === run.id && !shown.has(m.id))) view.setMessage(m);
        return view;
      },
    })),
  ].sort((a, b) => a.at - b.at || a.order - b.order);
  return items.map((item) => item.el());
}
