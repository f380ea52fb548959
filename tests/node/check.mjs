// The official openai npm package against Assistd: quickstart, streaming, a function call, errors.
// Usage: ASSISTD_URL=http://127.0.0.1:8000/v1 ASSISTD_KEY=... TOOL_MODEL=queue:... node check.mjs
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.ASSISTD_URL, apiKey: process.env.ASSISTD_KEY });
const out = {};

const assistant = await client.beta.assistants.create({
  name: "Math Tutor", instructions: "You are a personal math tutor.", model: "echo",
});
const thread = await client.beta.threads.create();
await client.beta.threads.messages.create(thread.id, { role: "user", content: "I need to solve 3x + 11 = 14" });
const run = await client.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id });
const messages = await client.beta.threads.messages.list(run.thread_id);
out.quickstart = { status: run.status, reply: messages.data[0].content[0].text.value };

const deltas = [];
const stream = client.beta.threads.runs
  .stream(thread.id, { assistant_id: assistant.id })
  .on("textDelta", (delta) => deltas.push(delta.value));
const final = await stream.finalRun();
const streamed = await stream.finalMessages();
out.stream = { status: final.status, deltas: deltas.length, text: deltas.join(""),
               message: streamed[0].content[0].text.value };

const tool = { type: "function", function: { name: "get_weather", parameters: { type: "object", properties: {} } } };
const toolAssistant = await client.beta.assistants.create({ model: process.env.TOOL_MODEL, tools: [tool] });
const waiting = await client.beta.threads.createAndRunPoll({
  assistant_id: toolAssistant.id, thread: { messages: [{ role: "user", content: "weather?" }] },
});
const call = waiting.required_action.submit_tool_outputs.tool_calls[0];
const done = await client.beta.threads.runs.submitToolOutputsAndPoll(waiting.id, {
  thread_id: waiting.thread_id, tool_outputs: [{ tool_call_id: call.id, output: "sunny" }],
});
const answer = await client.beta.threads.messages.list(done.thread_id);
out.tools = { first: waiting.status, call: call.function.name, status: done.status,
              reply: answer.data[0].content[0].text.value };

try {
  await new OpenAI({ baseURL: process.env.ASSISTD_URL, apiKey: "sk-wrong" }).beta.assistants.list();
  out.auth = "no error";
} catch (err) {
  out.auth = { status: err.status, name: err.constructor.name };
}
try {
  await client.beta.threads.runs.retrieve("run_missing", { thread_id: thread.id });
  out.missing = "no error";
} catch (err) {
  out.missing = { status: err.status, name: err.constructor.name };
}
console.log(JSON.stringify(out));
