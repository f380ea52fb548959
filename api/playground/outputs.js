// Renders a response in the timeline as a run is rendered: its header (id, status, model, usage)
// and its output items (message, function_call, reasoning, ...), followed live from stream events.

import { h, statusBadge } from "./dom.js";
import { pretty, renderMessage } from "./timeline.js";

const TERMINAL = new Set(["completed", "failed", "cancelled", "incomplete"]);

/** Response content parts in the Assistants message shape that renderMessage draws. */
function asMessage(item) {
  const content = (item.content || []).map((part) =>
    part.type === "refusal" ? part : { type: "text", text: { value: part.text || "", annotations: [] } });
  return { id: item.id, role: item.role, status: item.status, content };
}

function step(item, title, ...children) {
  return h("section.step", { dataset: { id: item.id, type: item.type } },
    h("div.step-head", {}, `${title} `, item.status ? statusBadge(item.status) : null), children);
}

function renderItem(item) {
  if (item.type === "message") return renderMessage(asMessage(item));
  if (item.type === "function_call") {
    return step(item, "Function call", h("div.call", { dataset: { kind: "function", call: item.call_id } },
      h("h4", {}, "Function ", h("code", {}, item.name || "…"), h("small.meta", {}, ` ${item.call_id || ""}`)),
      h("div.label", {}, "Arguments"), h("pre", {}, pretty(item.arguments))));
  }
  if (item.type === "reasoning") {
    const texts = [...(item.summary || []), ...(item.content || [])].filter(Boolean).map((p) => h("p.text", {}, p.text));
    return step(item, "Reasoning", texts.length ? texts : h("p.note", {}, "No summary."));
  }
  return step(item, item.type.replaceAll("_", " "), h("pre", {}, JSON.stringify(item, null, 2)));
}

/** What the user sent: a message, or function outputs. */
export function renderInput(input) {
  if (typeof input === "string") return renderMessage({ role: "user", content: [{ type: "text", text: { value: input } }] });
  return h("section.step", { dataset: { type: "function_outputs" } }, h("div.step-head", {}, "Function outputs"),
    input.map((o) => h("div.call", { dataset: { kind: "function_output" } },
      h("h4", {}, "Output for ", h("code", {}, o.call_id)), h("pre.output", {}, o.output))));
}

/** One line for a conversation item in the sidebar. */
export function itemSummary(item) {
  if (item.type === "message") return `${item.role}: ${(item.content || []).map((p) => p.text || p.refusal || "").join(" ")}`;
  if (item.type === "function_call") return `function_call ${item.name}(${item.arguments})`;
  if (item.type === "function_call_output") return `function_call_output ${item.call_id}: ${item.output}`;
  return item.type;
}

export function usageText(usage) {
  return `${usage.input_tokens} in · ${usage.output_tokens} out · ${usage.total_tokens} tokens`;
}

export class ResponseView {
  /** onCalls(response, calls) returns the form that answers a completed response's function calls. */
  constructor({ onCalls } = {}) {
    this.response = { id: "", status: "queued", model: "" };
    this.items = [];
    this.onCalls = onCalls;
    this.head = h("header.run-head");
    this.body = h("div.run-body");
    this.problem = h("div");
    this.action = h("div.action");
    this.el = h("section.run.response", { "aria-label": "Response" }, this.head, this.body, this.problem, this.action);
    this.setResponse(this.response);
  }

  get done() {
    return TERMINAL.has(this.response.status);
  }

  setResponse(response) {
    this.response = response;
    Object.assign(this.el.dataset, { id: response.id, status: response.status });
    const usage = response.usage;
    this.head.replaceChildren(...[h("span.run-id", {}, response.id), statusBadge(response.status), h("span", {}, response.model),
      usage ? h("span.usage", { "data-testid": "usage" }, usageText(usage)) : null].filter(Boolean));
    const reason = response.incomplete_details?.reason;
    this.problem.replaceChildren(...[
      response.error ? h("p.error", { role: "status" }, `Failed: ${response.error.message} (${response.error.code})`) : null,
      reason ? h("p.note", {}, `Incomplete: ${reason.replaceAll("_", " ")}`) : null,
    ].filter(Boolean));
    if (!this.done) return;
    (response.output || []).forEach((item, i) => this.setItem(i, item)); // the stored output is the last word
    const calls = this.items.filter((item) => item?.type === "function_call");
    if (response.status === "completed" && calls.length && this.onCalls && !this.action.firstChild) {
      this.action.append(this.onCalls(response, calls));
    }
  }

  setItem(index, item) {
    this.items[index] = item;
    const el = renderItem(item);
    el.dataset.index = index;
    const old = this.body.querySelector(`:scope > [data-index="${index}"]`);
    old ? old.replaceWith(el) : this.body.append(el);
  }

  /** Applies one stream event; returns the response when it changed. */
  apply(event, data) {
    if (!data) return null;
    if (data.response) {
      this.setResponse(data.response);
      return data.response;
    }
    if (event === "error") {
      this.problem.append(h("p.error", { role: "alert" }, `Stream error: ${data.message || data.code}`));
      return null;
    }
    if (event.startsWith("response.output_item.")) {
      this.setItem(data.output_index, data.item);
      return null;
    }
    const item = this.items[data.output_index];
    if (!item) return null;
    const part = () => ((item.content ||= [])[data.content_index] ||= { type: "output_text", text: "" });
    if (event.startsWith("response.content_part.")) (item.content ||= [])[data.content_index] = data.part;
    else if (event === "response.output_text.delta") part().text += data.delta;
    else if (event === "response.output_text.done") part().text = data.text;
    else if (event === "response.function_call_arguments.delta") item.arguments = (item.arguments || "") + data.delta;
    else if (event === "response.function_call_arguments.done") item.arguments = data.arguments;
    else if (event === "response.reasoning_summary_text.delta") {
      ((item.summary ||= [])[data.summary_index] ||= { type: "summary_text", text: "" }).text += data.delta;
    } else return null;
    this.setItem(data.output_index, item);
    return null;
  }
}
