// Assistants: list, create, edit, delete; tools with a JSON schema editor that validates.

import { api, modelIds } from "./api.js";
import { attempt, clear, field, h, note } from "./dom.js";
import { vectorStores } from "./files.js";
import { record, store } from "./state.js";

const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);
let flash = ""; // "Created asst_..." survives the move to the new assistant's page

const EXAMPLE = { type: "object", properties: { location: { type: "string", description: "City name" } }, required: ["location"] };

export async function show(main, [id]) {
  const [assistants, files, stores, listed] = await Promise.all([
    attempt(() => api.all("/assistants?order=desc")),
    attempt(() => api.all("/files?purpose=assistants")),
    vectorStores(),
    modelIds(),
  ]);
  if (!assistants) return;
  const chosen = assistants.find((a) => a.id === id) || (id === "new" || !assistants.length ? null : assistants[0]);
  const list = h("ul.item-list", {}, h("li", {}, h("a", { href: "#/assistants/new", "aria-current": chosen ? null : "page" }, "+ New assistant")),
    assistants.map((a) => h("li", {}, h("a", { href: `#/assistants/${a.id}`, "aria-current": a === chosen ? "page" : null },
      a.name || "Untitled", h("small", {}, `${a.model} · ${a.id}`)))));
  const models = new Set([...store.models, ...listed, ...assistants.map((a) => a.model)]);
  main.append(h("div.split", {}, h("aside.sidebar", { "aria-label": "Assistants" }, h("h2", {}, "Assistants"), list),
    h("section.panel", {}, editor(chosen, { models, files: files || [], stores }))));
}

/** Problems with a function's JSON schema, in plain words; empty when it is fine. */
export function schemaProblems(text) {
  if (!text.trim()) return [];
  let schema;
  try { schema = JSON.parse(text); } catch (error) { return [`Not valid JSON: ${error.message}`]; }
  if (!schema || typeof schema !== "object" || Array.isArray(schema)) return ["The parameters must be a JSON object."];
  if (schema.type !== "object") return ['The top level needs "type": "object".'];
  const problems = [];
  const walk = (node, path) => {
    if (!node || typeof node !== "object") return problems.push(`${path} is not a schema object.`);
    const types = [].concat(node.type ?? []);
    for (const t of types) if (!TYPES.has(t)) problems.push(`${path}: unknown type "${t}".`);
    if (node.properties !== undefined) {
      if (typeof node.properties !== "object" || Array.isArray(node.properties)) problems.push(`${path}.properties must be an object.`);
      else for (const [k, v] of Object.entries(node.properties)) walk(v, `${path}.${k}`);
    }
    if (node.required !== undefined) {
      if (!Array.isArray(node.required)) problems.push(`${path}.required must be a list of names.`);
      else for (const r of node.required) if (!node.properties || !(r in node.properties)) problems.push(`${path}: "${r}" is required but not in properties.`);
    }
    if (node.items !== undefined) walk(node.items, `${path}[]`);
  };
  walk(schema, "parameters");
  return problems;
}

/** One function tool's editor: {el, check() -> problems, value() -> the Assistants tool shape}. */
export function functionEditor(fn, onRemove) {
  const name = h("input", { value: fn?.name || "", required: true, pattern: "[a-zA-Z0-9_\\-]{1,64}", spellcheck: false, autocomplete: "off" });
  const description = h("input", { value: fn?.description || "" });
  const params = h("textarea.mono", { rows: 8, spellcheck: false, value: JSON.stringify(fn?.parameters || EXAMPLE, null, 2) });
  const strict = h("input", { type: "checkbox", checked: Boolean(fn?.strict) });
  const verdict = h("p.verdict", { "aria-live": "polite" });
  const check = () => {
    const problems = schemaProblems(params.value);
    if (!FUNCTION_NAME.test(name.value)) problems.unshift("The name may use letters, digits, _ and - (at most 64).");
    params.setCustomValidity(problems.join(" "));
    verdict.className = problems.length ? "verdict error" : "verdict ok";
    verdict.textContent = problems.length ? problems.join(" ") : "Valid schema.";
    return problems;
  };
  name.addEventListener("input", check);
  params.addEventListener("input", check);
  check();
  const el = h("fieldset.function", {}, h("legend", {}, "Function"),
    field("Name", name), field("Description", description), field("Parameters (JSON schema)", params), verdict,
    h("label.check", {}, strict, " Strict"),
    h("button", { type: "button", onclick: () => { el.remove(); onRemove(); } }, "Remove function"));
  return {
    el, check,
    value: () => ({ type: "function", function: { name: name.value.trim(), description: description.value.trim() || undefined,
      parameters: params.value.trim() ? JSON.parse(params.value) : undefined, strict: strict.checked || undefined } }),
  };
}

function number(value, min, max) {
  return h("input", { type: "number", min, max, step: "0.05", value: value ?? "", placeholder: "default" });
}

function editor(assistant, { models, files, stores }) {
  const a = assistant || { tools: [], tool_resources: {} };
  const name = h("input", { value: a.name || "", maxLength: 256 });
  const description = h("input", { value: a.description || "", maxLength: 512 });
  const model = h("input", { value: a.model || "", required: true, list: "model-list", spellcheck: false, autocomplete: "off" });
  const datalist = h("datalist", { id: "model-list" }, [...models].map((m) => h("option", { value: m })));
  const instructions = h("textarea", { rows: 5, value: a.instructions || "" });
  const temperature = number(a.temperature, 0, 2);
  const topP = number(a.top_p, 0, 1);
  const format = responseFormat(a.response_format);
  const tools = a.tools || [];
  const code = h("input", { type: "checkbox", checked: tools.some((t) => t.type === "code_interpreter") });
  const search = h("input", { type: "checkbox", checked: tools.some((t) => t.type === "file_search") });
  const functions = [];
  const fnList = h("div.functions");
  const addFunction = (fn) => {
    const editor = functionEditor(fn, () => functions.splice(functions.indexOf(editor), 1));
    functions.push(editor);
    fnList.append(editor.el);
    return editor;
  };
  tools.filter((t) => t.type === "function").forEach((t) => addFunction(t.function));
  const codeFiles = new Set(a.tool_resources?.code_interpreter?.file_ids || []);
  const fileBoxes = files.map((f) => h("label.check", {}, h("input", { type: "checkbox", value: f.id, checked: codeFiles.has(f.id) }), ` ${f.filename}`));
  const storeSelect = stores.missing ? null : h("select", {}, h("option", { value: "" }, "None"),
    stores.items.map((s) => h("option", { value: s.id }, `${s.name || s.id} (${s.file_counts?.completed ?? 0} files)`)));
  if (storeSelect) storeSelect.value = a.tool_resources?.file_search?.vector_store_ids?.[0] || "";

  const body = () => {
    const out = {
      name: name.value.trim() || null, description: description.value.trim() || null, model: model.value.trim(),
      instructions: instructions.value || null,
      temperature: temperature.value === "" ? null : Number(temperature.value),
      top_p: topP.value === "" ? null : Number(topP.value),
      response_format: format.value(),
      tools: [...(code.checked ? [{ type: "code_interpreter" }] : []), ...(search.checked ? [{ type: "file_search" }] : []),
        ...functions.map((f) => f.value())],
      tool_resources: {
        code_interpreter: { file_ids: fileBoxes.map((l) => l.firstChild).filter((c) => c.checked).map((c) => c.value) },
        ...(storeSelect ? { file_search: { vector_store_ids: storeSelect.value ? [storeSelect.value] : [] } } : {}),
      },
    };
    if (assistant) return out; // an edit sends every field, so a cleared one is cleared
    if (out.response_format === "auto") delete out.response_format;
    if (!out.tool_resources.code_interpreter.file_ids.length) delete out.tool_resources.code_interpreter;
    if (!out.tool_resources.file_search?.vector_store_ids.length) delete out.tool_resources.file_search;
    if (!Object.keys(out.tool_resources).length) delete out.tool_resources;
    return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== null));
  };

  const form = h("form.editor", {
    "aria-label": assistant ? `Edit ${assistant.name || assistant.id}` : "New assistant",
    onsubmit: async (e) => {
      e.preventDefault();
      if (functions.some((f) => f.check().length) || !form.reportValidity()) return;
      const sent = body();
      const saved = await attempt(() => api.post(assistant ? `/assistants/${assistant.id}` : "/assistants", sent));
      if (!saved) return;
      record(assistant ? "assistant.update" : "assistant.create", assistant ? { id: assistant.id, body: sent } : { body: sent });
      store.useModel(saved.model);
      store.assistant = saved.id;
      status.textContent = `Saved ${saved.id}.`;
      if (!assistant) {
        flash = `Created ${saved.id}.`;
        location.hash = `#/assistants/${saved.id}`;
      }
    },
  });
  const status = h("p.saved", { role: "status" }, flash);
  flash = "";
  const remove = assistant ? h("button.danger", { type: "button", onclick: async () => {
    if (!confirm(`Delete the assistant “${assistant.name || assistant.id}”?`)) return;
    if (await attempt(() => api.del(`/assistants/${assistant.id}`))) {
      record("assistant.delete", { id: assistant.id });
      location.hash = "#/assistants";
    }
  } }, "Delete") : null;

  return clear(form,
    h("h2", {}, assistant ? assistant.name || "Untitled assistant" : "New assistant"),
    assistant ? h("p.meta", {}, assistant.id) : null,
    h("div.grid", {}, field("Name", name), field("Model", model, "Any model name the server routes; recent and listed ones are suggested."), datalist),
    field("Description", description),
    field("Instructions", instructions),
    h("div.grid", {}, field("Temperature", temperature, "0 to 2"), field("Top P", topP, "0 to 1")),
    format.el,
    h("fieldset", {}, h("legend", {}, "Tools"),
      h("label.check", {}, code, " Code interpreter"),
      h("div.resource", {}, fileBoxes.length ? [h("span", {}, "Files for code interpreter:"), fileBoxes]
        : h("small.hint", {}, "Upload files with the purpose “assistants” under Files to give them to code interpreter.")),
      h("label.check", {}, search, " File search"),
      h("div.resource", {}, storeSelect ? field("Vector store for file search", storeSelect) : note(stores.message)),
      fnList,
      h("button", { type: "button", onclick: () => addFunction(null).el.querySelector("input").focus() }, "Add function")),
    h("div.buttons", {}, h("button.primary", { type: "submit" }, assistant ? "Save" : "Create assistant"), remove,
      assistant ? h("a.button", { href: "#/threads", onclick: () => { store.assistant = assistant.id; } }, "Chat with it") : null),
    status);
}

function responseFormat(current) {
  const kind = h("select", {}, ["auto", "text", "json_object", "json_schema"].map((k) => h("option", { value: k }, k)));
  kind.value = typeof current === "string" ? current : current?.type || "auto";
  const schemaName = h("input", { value: current?.json_schema?.name || "answer" });
  const schema = h("textarea.mono", { rows: 6, spellcheck: false,
    value: JSON.stringify(current?.json_schema?.schema || { type: "object", properties: {} }, null, 2) });
  const extra = h("div", {}, field("Schema name", schemaName), field("JSON schema", schema));
  const sync = () => { extra.hidden = schema.disabled = schemaName.disabled = kind.value !== "json_schema"; };
  kind.addEventListener("change", sync);
  sync();
  schema.addEventListener("input", () => {
    let problem = "";
    try { JSON.parse(schema.value); } catch (error) { problem = `Not valid JSON: ${error.message}`; }
    schema.setCustomValidity(problem);
  });
  return {
    el: h("div", {}, field("Response format", kind), extra),
    value: () => kind.value === "auto" ? "auto" : kind.value === "json_schema"
      ? { type: "json_schema", json_schema: { name: schemaName.value, schema: JSON.parse(schema.value) } } : { type: kind.value },
  };
}
