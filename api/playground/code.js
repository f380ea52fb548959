// "Copy as code": the Python SDK snippet for the last thing the user did.

import { BASE } from "./api.js";

/** Python code written as is (a variable, not a string). */
class Expr {
  constructor(code) { this.code = code; }
}

/** A JSON value as a Python literal. */
export function py(value, indent = "") {
  if (value instanceof Expr) return value.code;
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  const inner = `${indent}    `;
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => inner + py(v, inner)).join(",\n")},\n${indent}]`;
  }
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  if (!entries.length) return "{}";
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${py(v, inner)}`).join(",\n")},\n${indent}}`;
}

/** Keyword arguments: name=value, one per line. */
function kwargs(params) {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `    ${k}=${py(v, "    ")},`)
    .join("\n");
}

function call(target, params) {
  return `${target}(\n${kwargs(params)}\n)`;
}

const SNIPPETS = {
  "assistant.create": ({ body }) => `assistant = ${call("client.beta.assistants.create", body)}\nprint(assistant.id)`,
  "assistant.update": ({ id, body }) => `assistant = ${call("client.beta.assistants.update", { assistant_id: id, ...body })}`,
  "assistant.delete": ({ id }) => `client.beta.assistants.delete(${py(id)})`,
  "thread.create": () => "thread = client.beta.threads.create()\nprint(thread.id)",
  "thread.delete": ({ id }) => `client.beta.threads.delete(${py(id)})`,
  "run.stream": ({ thread_id, message, assistant_id }) => [
    message ? `client.beta.threads.messages.create(\n${kwargs({ thread_id, ...message })}\n)\n` : "",
    `with ${call("client.beta.threads.runs.stream", { thread_id, assistant_id })} as stream:`,
    "    for text in stream.text_deltas:",
    '        print(text, end="", flush=True)',
    "    run = stream.get_final_run()",
    "print()\nprint(run.status, run.usage)",
  ].join("\n"),
  "message.create": ({ thread_id, message }) => `message = ${call("client.beta.threads.messages.create", { thread_id, ...message })}`,
  "run.submit": ({ thread_id, run_id, tool_outputs }) => [
    `with ${call("client.beta.threads.runs.submit_tool_outputs_stream", { thread_id, run_id, tool_outputs })} as stream:`,
    "    for text in stream.text_deltas:",
    '        print(text, end="", flush=True)',
  ].join("\n"),
  "run.cancel": ({ thread_id, run_id }) => `run = client.beta.threads.runs.cancel(${py(run_id)}, thread_id=${py(thread_id)})`,
  "response.create": ({ body, newConversation }) => [
    newConversation ? "conversation = client.conversations.create()\n" : "",
    `stream = ${call("client.responses.create", {
      ...body, ...(newConversation ? { conversation: new Expr("conversation.id") } : {}), stream: true })}`,
    "for event in stream:",
    '    if event.type == "response.output_text.delta":',
    '        print(event.delta, end="", flush=True)',
    '    elif event.type in ("response.completed", "response.incomplete", "response.failed"):',
    "        response = event.response",
    "print()",
    "for item in response.output:",
    '    if item.type == "function_call":',
    "        print(item.name, item.call_id, item.arguments)",
    "print(response.id, response.status, response.usage)",
  ].join("\n"),
  "file.upload": ({ filename, purpose }) =>
    `with open(${py(filename)}, "rb") as f:\n    file = client.files.create(file=f, purpose=${py(purpose)})\nprint(file.id)`,
  "file.delete": ({ id }) => `client.files.delete(${py(id)})`,
  "vector_store.create": ({ body }) => `vector_store = ${call("client.vector_stores.create", body)}\nprint(vector_store.id)`,
  "vector_store.delete": ({ id }) => `client.vector_stores.delete(${py(id)})`,
  "vector_store.file": ({ vector_store_id, file_id }) =>
    `client.vector_stores.files.create_and_poll(vector_store_id=${py(vector_store_id)}, file_id=${py(file_id)})`,
};

export function snippet(action) {
  const head = [
    "import os",
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url=${py(BASE)}, api_key=os.environ["OPENAI_API_KEY"])`,
    "",
  ].join("\n");
  if (!action) return `${head}# Do something in the playground first: its code appears here.\n`;
  return `${head}${SNIPPETS[action.kind](action.params)}\n`;
}
