// The official openai npm package against Assistd's Responses and Conversations APIs:
// a plain response, a streamed one, a function call continued with previous_response_id, and
// a conversation. Usage: ASSISTD_URL=... ASSISTD_KEY=... TOOL_MODEL=queue:... node responses.mjs
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.ASSISTD_URL, apiKey: process.env.ASSISTD_KEY });
const out = {};

const plain = await client.responses.create({ model: "echo", input: "hello from node" });
out.plain = { status: plain.status, text: plain.output_text };

const deltas = [];
const stream = client.responses.stream({ model: "words:4", input: "count" })
  .on("response.output_text.delta", (event) => deltas.push(event.delta));
const final = await stream.finalResponse();
out.stream = { status: final.status, deltas: deltas.length, text: final.output_text };

const tool = { type: "function", name: "get_weather", parameters: { type: "object", properties: {} } };
const first = await client.responses.create({ model: process.env.TOOL_MODEL, input: "weather?", tools: [tool] });
const call = first.output.find((item) => item.type === "function_call");
const second = await client.responses.create({
  model: process.env.TOOL_MODEL, previous_response_id: first.id, tools: [tool],
  input: [{ type: "function_call_output", call_id: call.call_id, output: "sunny" }],
});
out.tools = { call: call.name, text: second.output_text };

const conversation = await client.conversations.create({ metadata: { topic: "node" } });
await client.responses.create({ model: "echo", input: "remember me", conversation: conversation.id });
const items = await client.conversations.items.list(conversation.id, { order: "asc" });
out.conversation = items.data.map((item) => item.content[0].text);
console.log(JSON.stringify(out));
