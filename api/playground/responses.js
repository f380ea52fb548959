// Responses: chat with a model and function tools, each turn naming the previous response or all
// turns in one conversation; the streamed answer, the output items, function outputs.

import { api, modelIds } from "./api.js";
import { functionEditor } from "./assistants.js";
import { attempt, clear, field, h, note, showError } from "./dom.js";
import { itemSummary, renderInput, ResponseView } from "./outputs.js";
import { record, store } from "./state.js";

let view = null; // the chat outlives a visit to another tab

export async function show(main) {
  const listed = await modelIds();
  view ||= new ResponsesView(await defaultModel(listed));
  view.suggest(listed);
  main.append(view.el);
}

/** The model last used here or in Assistants, else the current assistant's, else the first listed. */
async function defaultModel(listed) {
  if (store.models.length) return store.models[0];
  const page = await attempt(() => api.get("/assistants?order=desc&limit=20"));
  const assistants = page?.data || [];
  return (assistants.find((a) => a.id === store.assistant) || assistants[0])?.model || listed[0] || "";
}

class ResponsesView {
  constructor(model) {
    this.functions = [];
    this.model = h("input", { value: model, required: true, list: "response-models", spellcheck: false, autocomplete: "off" });
    this.instructions = h("textarea", { rows: 3 });
    this.useConversation = h("input", { type: "checkbox", "aria-describedby": "conversation-hint", onchange: () => this.reset() });
    this.items = h("ol.conversation-items", { "aria-label": "Conversation items" });
    this.timeline = h("div.timeline", { "aria-live": "polite", "aria-busy": "false" });
    this.title = h("h2", { id: "responses-title" });
    this.status = h("span.run-status", { role: "status" });
    this.el = h("div.threads-view", {}, this.sidebar(), h("section.conversation", { "aria-labelledby": "responses-title" },
      h("header.conversation-head", {}, this.title, this.status), this.timeline, this.composer()));
    this.reset();
  }

  sidebar() {
    const fnList = h("div.functions");
    const add = () => {
      const editor = functionEditor(null, () => this.functions.splice(this.functions.indexOf(editor), 1));
      this.functions.push(editor);
      fnList.append(editor.el);
      editor.el.querySelector("input").focus();
    };
    this.itemsSection = h("section", {}, h("h2", {}, "Conversation items"), this.items);
    return h("aside.sidebar", { "aria-label": "Response settings" },
      this.newButton = h("button.primary", { type: "button", onclick: () => this.reset() }, "New chat"),
      field("Model", this.model, "Any model name the server routes."),
      this.modelList = h("datalist", { id: "response-models" }),
      field("Instructions", this.instructions),
      h("div.field", {}, h("label.check", {}, this.useConversation, " Use a conversation"),
        h("small.hint", { id: "conversation-hint" }, "On: a new conversation holds every turn. Off: each turn names the previous response.")),
      h("fieldset", {}, h("legend", {}, "Function tools"), fnList, h("button", { type: "button", onclick: add }, "Add function")),
      this.itemsSection);
  }

  /** The model picker's suggestions: the recently used models, then the server's. */
  suggest(listed) {
    this.modelList.replaceChildren(...[...new Set([...store.models, ...listed])].map((m) => h("option", { value: m })));
  }

  composer() {
    this.input = h("textarea", { name: "message", rows: 3, placeholder: "Write a message… (Enter sends, Shift+Enter for a new line)",
      onkeydown: (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.send(); } } });
    this.sendButton = h("button.primary", { type: "submit" }, "Send");
    return h("form.composer", { onsubmit: (e) => { e.preventDefault(); this.send(); } },
      field("Message", this.input), h("div.buttons", {}, this.sendButton));
  }

  /** A new chat: no previous response, no conversation (one is made at the next turn if asked for). */
  reset() {
    this.previousId = null;
    this.conversationId = null;
    this.title.textContent = "New chat";
    this.status.textContent = "";
    this.itemsSection.hidden = true;
    clear(this.timeline, note("Write a message below: the answer streams in, then the response's output items."));
  }

  async send() {
    const text = this.input.value.trim();
    if (!text) return this.input.focus();
    this.input.value = "";
    if (!(await this.turn(text, this.previousId))) this.input.value ||= text;
  }

  /** One POST /v1/responses, streamed into the timeline; true when the server took it. */
  async turn(input, previousId) {
    if (this.sendButton.disabled) return false; // one turn at a time
    if (this.functions.some((f) => f.check().length)) {
      showError("Fix the function tools first (each says what is wrong).");
      return false;
    }
    if (!this.model.reportValidity()) return false;
    this.setBusy(true);
    const view = new ResponseView({ onCalls: (response, calls) => this.outputsForm(response, calls) });
    const took = await attempt(async () => {
      const created = this.useConversation.checked && !this.conversationId;
      if (created) this.conversationId = (await api.post("/conversations", {})).id;
      const body = {
        model: this.model.value.trim(), input, instructions: this.instructions.value.trim() || undefined,
        tools: this.functions.length ? this.functions.map((f) => ({ type: "function", ...f.value().function })) : undefined,
        ...(this.conversationId ? { conversation: this.conversationId } : { previous_response_id: previousId || undefined }),
      };
      record("response.create", { body, newConversation: created });
      this.title.textContent = this.conversationId || "Chat (previous_response_id)";
      this.timeline.querySelector(":scope > .note")?.remove();
      const sent = renderInput(input);
      this.timeline.append(sent, view.el);
      try {
        await this.stream(view, body);
      } catch (error) {
        if (!view.response.id) { sent.remove(); view.el.remove(); } // refused: nothing to show
        throw error;
      }
      return true;
    });
    this.setBusy(false);
    return Boolean(took);
  }

  async stream(view, body) {
    for await (const { event, data } of api.stream("/responses", body)) {
      const response = view.apply(event, data);
      if (response) this.status.textContent = `Response ${response.status.replace("_", " ")}`;
      if (event === "response.output_text.delta") view.el.scrollIntoView({ block: "end" });
    }
    if (!view.done && view.response.id) view.setResponse(await api.get(`/responses/${view.response.id}`));
    if (view.response.status === "completed" || view.response.status === "incomplete") {
      this.previousId = view.response.id;
      store.useModel(body.model);
    }
    if (this.conversationId) await this.loadItems();
  }

  async loadItems() {
    const items = await attempt(() => api.all(`/conversations/${this.conversationId}/items?order=asc`));
    if (!items) return;
    this.itemsSection.hidden = false;
    clear(this.items, items.map((item) => h("li", { dataset: { type: item.type } }, itemSummary(item))));
  }

  setBusy(busy) {
    this.timeline.setAttribute("aria-busy", String(busy));
    // a new chat mid-turn would chain to the old one
    this.sendButton.disabled = this.newButton.disabled = this.useConversation.disabled = busy;
  }

  /** One output field per function call; submitting sends them as the next turn. */
  outputsForm(response, calls) {
    const inputs = calls.map((call) => h("textarea", { rows: 2, required: true, dataset: { call: call.call_id } }));
    const form = h("form.tool-outputs", {
      "aria-label": "Function outputs",
      onsubmit: async (e) => {
        e.preventDefault();
        const button = form.querySelector("button[type=submit]");
        button.disabled = true;
        const input = inputs.map((i) => ({ type: "function_call_output", call_id: i.dataset.call, output: i.value }));
        if (await this.turn(input, response.id)) form.remove(); // the outputs now show in the timeline
        else button.disabled = false;
      },
    }, h("h4", {}, "The model called your functions"),
    calls.map((call, i) => h("fieldset", {},
      h("legend", {}, h("code", {}, call.name), ` (${call.call_id})`),
      h("pre", {}, call.arguments),
      field(`Output of ${call.name}`, inputs[i]))),
    h("button.primary", { type: "submit" }, "Submit outputs"));
    queueMicrotask(() => inputs[0]?.focus());
    return form;
  }
}
