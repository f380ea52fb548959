// Drives the playground in headless Chromium (Debian's, through playwright-core).
// `node e2e.mjs <scenario>` with PLAYGROUND_URL, PLAYGROUND_KEY and ARTIFACTS set; prints one JSON line.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.PLAYGROUND_URL;
const KEY = process.env.PLAYGROUND_KEY;
const OUT = process.env.ARTIFACTS;
const TIMEOUT = 15_000;

async function withKey(context, assistant) {
  await context.addInitScript(([key, id]) => {
    if (location.protocol !== "http:") return;
    if (!localStorage.getItem("assistd.playground.key")) localStorage.setItem("assistd.playground.key", key);
    if (id) localStorage.setItem("assistd.playground.assistant", id);
  }, [KEY, assistant || ""]);
}

async function ready(page, hash = "") {
  await page.goto(`${BASE}/playground/${hash}`);
  await page.waitForSelector("html[data-ready=true]", { timeout: TIMEOUT });
}

const shot = (page, name) => page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });

/** The whole page in a window as tall as it is (a full-page shot draws the sticky header mid-page). */
async function tallShot(page, name) {
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.setViewportSize({ width: 1280, height });
  await page.evaluate(() => scrollTo(0, 0));
  await page.screenshot({ path: join(OUT, `${name}.png`) });
  await page.setViewportSize({ width: 1280, height: 800 });
}

/** Text of the newest assistant message in the thread. */
const lastAnswer = (page) => page.evaluate(() =>
  [...document.querySelectorAll('.message[data-role=assistant] [data-testid=message-content]')].at(-1)?.textContent ?? "");

const scenarios = {
  /** A server that accepts any key: the playground opens on its views, no key dialog. */
  async nokey(context) {
    const page = await context.newPage();
    await ready(page);
    const dialog = await page.locator("#key-dialog").evaluate((d) => d.open);
    await page.getByRole("link", { name: "Assistants" }).click();
    await page.waitForSelector("main h1, main h2", { timeout: TIMEOUT });
    return { dialog, key: await page.evaluate(() => localStorage.getItem("assistd.playground.key")) };
  },
  /** Create an assistant with a function tool, chat, answer the function call, see the steps and runs. */
  async chat(context) {
    const page = await context.newPage();
    await page.goto(`${BASE}/playground/`);
    await page.waitForSelector("#key-dialog[open]");
    await page.keyboard.type(KEY);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#key-dialog", { state: "hidden" });
    await page.getByRole("link", { name: "Assistants" }).click();
    await page.getByRole("link", { name: "+ New assistant" }).click();
    // the picker is filled from GET /v1/models once it answers: wait for it (or time out, and the test says so)
    await page.waitForFunction(() => document.querySelectorAll("#model-list option").length > 1).catch(() => {});
    const suggested = await page.locator("#model-list option").evaluateAll((options) => options.map((o) => o.value));
    await page.getByLabel("Name", { exact: true }).first().fill("Weather bot");
    await page.getByLabel("Model").fill("toolonce:get_weather");
    await page.getByLabel("Instructions").fill("Answer questions about the weather; call get_weather.");
    await page.getByRole("button", { name: "Add function" }).click();
    const fn = page.locator("fieldset.function");
    await fn.getByLabel("Name").fill("get_weather");
    await fn.getByLabel("Description").fill("The weather in a city");
    const params = fn.getByLabel("Parameters (JSON schema)");
    const valid = await params.inputValue();
    await params.fill("{\"type\": \"object\", ");
    const invalidVerdict = await fn.locator(".verdict").textContent();
    await params.fill(JSON.stringify({ type: "object", properties: { city: { type: "string" } }, required: ["town"] }));
    const missingVerdict = await fn.locator(".verdict").textContent();
    await params.fill(valid);
    const validVerdict = await fn.locator(".verdict").textContent();
    await page.getByRole("button", { name: "Create assistant" }).click();
    await page.waitForSelector("text=/Created asst_/", { timeout: TIMEOUT });
    const listed = await page.locator(".item-list").textContent();
    await shot(page, "assistants");
    const assistantCode = await codeShown(page);

    await page.getByRole("link", { name: "Threads" }).click();
    await page.getByLabel("Message").fill("What is the weather in Paris?");
    await page.getByLabel("Message").press("Enter");
    const form = page.getByRole("form", { name: "Function outputs" });
    await form.waitFor({ timeout: TIMEOUT });
    const legend = await form.locator("legend").textContent();
    const status = await page.locator(".run-status").textContent();
    await shot(page, "requires-action");
    await form.getByLabel("Output of get_weather").fill("sunny, 21 °C");
    await form.getByRole("button", { name: "Submit outputs" }).click();
    await page.waitForSelector(".run[data-status=completed]", { timeout: TIMEOUT });
    await page.waitForFunction(() => !document.querySelector(".timeline[aria-busy=true]"));
    const answer = await lastAnswer(page);
    const call = await page.locator(".call[data-kind=function]").last().textContent();
    const usage = await page.locator("[data-testid=usage]").last().textContent();
    await shot(page, "chat");
    const submitCode = await codeShown(page);

    // the runs view lists the whole project's (other tests' too): this thread's runs
    const thread = await page.evaluate(() => location.hash.split("/")[2]);
    await page.getByRole("link", { name: "Runs" }).click();
    await page.waitForSelector(`table[aria-label=Runs] tbody tr[data-thread="${thread}"]`, { timeout: TIMEOUT });
    const runs = await page.locator(`table[aria-label=Runs] tbody tr[data-thread="${thread}"]`).evaluateAll((rows) => rows.map((r) => r.dataset.status));
    await shot(page, "runs");
    return { suggested, invalidVerdict, missingVerdict, validVerdict, listed, assistantCode, legend, status, answer, call, usage, submitCode, runs };
  },

  /** The answer appears word by word; a second run is cancelled mid-answer; a phone-sized screen. */
  async stream(context) {
    const page = await context.newPage();
    await ready(page, "#/threads");
    await page.locator("#attach-input").setInputFiles({ name: "data.csv", mimeType: "text/csv", buffer: Buffer.from("a,b\n1,2\n") });
    await page.getByLabel("Tool for data.csv").selectOption("code_interpreter");
    await page.getByLabel("Message").fill("hello there");
    await page.getByRole("button", { name: "Send and run" }).click();
    const seen = new Set();
    const statuses = new Set();
    const deadline = Date.now() + TIMEOUT;
    while (Date.now() < deadline) {
      // looked at before the sample: the last sample is then of the ended answer (sampled first,
      // the answer could end between the two and never be seen whole)
      const ended = await page.locator(".timeline[aria-busy=false] .run[data-status=completed]").count();
      seen.add(await lastAnswer(page));
      statuses.add(await page.locator(".run-status").textContent());
      if (ended) break;
      await page.waitForTimeout(40);
    }
    const answer = await lastAnswer(page);
    const usage = await page.locator("[data-testid=usage]").last().textContent();
    const first = await page.locator(".timeline").evaluate((el) => el.innerText);

    await page.getByLabel("Message").fill("please stop");
    await page.getByLabel("Message").press("Enter");
    await page.waitForFunction(() => [...document.querySelectorAll(".message[data-role=assistant]")].length === 2 &&
      document.querySelectorAll(".message[data-role=assistant]")[1].textContent.includes("You"), null, { timeout: TIMEOUT });
    await page.getByRole("button", { name: "Cancel run" }).click();
    await page.waitForSelector(".run[data-status=cancelled]", { timeout: TIMEOUT });
    await page.waitForFunction(() => document.querySelector(".timeline").getAttribute("aria-busy") === "false");
    const timeline = await page.locator(".timeline > *").evaluateAll((items) =>
      items.map((el) => el.classList.contains("run") ? `run:${el.dataset.status}` : `${el.dataset.role}:${el.textContent}`));
    const cancelCode = await codeShown(page);
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, "chat-phone");
    return { partials: [...seen].filter(Boolean), statuses: [...statuses], answer, usage, cancelCode, timeline, first,
      phoneOverflow: await page.evaluate(() => document.documentElement.scrollWidth > innerWidth) };
  },

  /** Responses: a streamed answer, a function call answered from its form, two turns of a conversation. */
  async responses(context) {
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: BASE });
    const page = await context.newPage();
    await ready(page, "#/responses");
    const model = page.getByLabel("Model");
    const message = page.getByLabel("Message");
    const defaultModel = await model.inputValue();
    await model.fill("pause:1000");
    await message.fill("hello responses");
    await message.press("Enter");
    const seen = new Set();
    const deadline = Date.now() + TIMEOUT;
    while (Date.now() < deadline) {
      seen.add(await lastAnswer(page));
      if (await settled(page, 1)) break;
      await page.waitForTimeout(40);
    }
    const answer = await lastAnswer(page);
    const usage = await page.locator("[data-testid=usage]").last().textContent();
    const streamCode = await codeShown(page);

    await model.fill("toolonce:get_weather");
    await page.getByRole("button", { name: "Add function" }).click();
    const fn = page.locator("fieldset.function");
    await fn.getByLabel("Name").fill("get_weather");
    await fn.getByLabel("Description").fill("The weather in a city");
    await message.fill("What is the weather in Paris?");
    await message.press("Enter");
    const form = page.getByRole("form", { name: "Function outputs" });
    await form.waitFor({ timeout: TIMEOUT });
    const legend = await form.locator("legend").textContent();
    const call = await page.locator(".call[data-kind=function]").last().textContent();
    await form.getByLabel("Output of get_weather").fill("sunny, 21 °C");
    await form.getByRole("button", { name: "Submit outputs" }).click();
    await page.waitForFunction(() => document.querySelectorAll(".run.response[data-status=completed]").length === 3 &&
      document.querySelector(".timeline").getAttribute("aria-busy") === "false", null, { timeout: TIMEOUT });
    const functionAnswer = await lastAnswer(page);
    const statuses = await page.locator(".run.response").evaluateAll((runs) => runs.map((r) => r.dataset.status));
    await tallShot(page, "responses");
    const submitCode = await codeShown(page);
    await page.getByRole("button", { name: "Copy as code" }).click();
    await page.getByRole("button", { name: "Copy", exact: true }).click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    await page.getByRole("button", { name: "Close" }).click();

    await page.getByRole("button", { name: "Remove function" }).click();
    await page.getByLabel("Use a conversation").check();
    await model.fill("echo");
    for (const [i, text] of ["first turn", "second turn"].entries()) {
      await message.fill(text);
      await message.press("Enter");
      await page.waitForFunction((n) => document.querySelectorAll(".conversation-items li").length === n, 2 * (i + 1), { timeout: TIMEOUT });
    }
    const turns = await page.locator(".timeline .message").evaluateAll((els) => els.map((el) => `${el.dataset.role}:${el.querySelector("[data-testid=message-content]").textContent}`));
    const items = await page.locator(".conversation-items li").allTextContents();
    const title = await page.locator("#responses-title").textContent();
    await tallShot(page, "responses-conversation");
    const conversationCode = await codeShown(page);
    await page.setViewportSize({ width: 390, height: 844 });
    return { defaultModel, partials: [...seen].filter(Boolean), answer, usage, streamCode, legend, call, functionAnswer, statuses,
      submitCode, copied, turns, items, title, conversationCode,
      phoneOverflow: await page.evaluate(() => document.documentElement.scrollWidth > innerWidth) };
  },

  /** The project's runs across its threads (not another project's): a waiting run refreshed until it
   * ends, "Load more", a run that opens its thread there, the status filter. PLAYGROUND_RUNS: the
   * oldest of ours (on the second page), the newest (waiting for a function's output). */
  async runs(context) {
    const [first, waiting] = process.env.PLAYGROUND_RUNS.split(",");
    const page = await context.newPage();
    await ready(page, "#/runs");
    const rows = "table[aria-label=Runs] tbody tr";
    const listed = () => page.locator(rows).evaluateAll((trs) =>
      trs.map((r) => ({ id: r.dataset.id, thread: r.dataset.thread, status: r.dataset.status })));
    await page.waitForSelector(`${rows}[data-id="${waiting}"][data-status=requires_action]`, { timeout: TIMEOUT });
    // another client answers the call; the view, refreshing while a run is active, shows the end
    await page.evaluate(answer, { id: waiting, thread: await page.locator(`${rows}[data-id="${waiting}"]`).getAttribute("data-thread") });
    await page.waitForSelector(`${rows}[data-id="${waiting}"][data-status=completed]`, { timeout: TIMEOUT });  // no click
    const firstPage = (await listed()).length;
    await page.getByRole("button", { name: "Load more" }).click();
    await page.waitForSelector(`${rows}[data-id="${first}"]`, { timeout: TIMEOUT });
    const all = await listed();
    const summary = await page.locator("p.meta[role=status]").textContent();
    await shot(page, "runs-project");
    await page.locator(`${rows}[data-id="${first}"] td`).nth(4).click();  // the model's cell: the whole row opens the thread
    await page.waitForSelector(`.run.highlight[data-id="${first}"][data-status=completed]`, { timeout: TIMEOUT });
    await shot(page, "runs-opened");
    await page.waitForSelector("ul.thread-list a[aria-current=page]", { timeout: TIMEOUT });  // the project's threads, listed
    const opened = { hash: await page.evaluate(() => location.hash), title: await page.locator("#thread-title").textContent(),
      highlighted: await page.locator(".run.highlight").evaluateAll((els) => els.map((el) => el.dataset.id)) };
    const sidebar = await page.locator("ul.thread-list a").evaluateAll((links) => links.map((a) => a.getAttribute("href").split("/").pop()));
    await page.getByRole("link", { name: "Runs" }).click();
    await page.waitForSelector(`${rows}[data-id="${waiting}"]`, { timeout: TIMEOUT });
    await page.getByLabel("Status").selectOption("completed");
    await page.waitForFunction((sel) => [...document.querySelectorAll(sel)].every((r) => r.dataset.status === "completed"), rows);
    await page.waitForSelector(`${rows}[data-id="${waiting}"]`);
    return { firstPage, all, summary, opened, sidebar, completed: await listed() };
  },

  /** Upload with the file picker and by dropping a file; list, delete; the vector store section. */
  async upload(context) {
    const page = await context.newPage();
    page.on("dialog", (dialog) => dialog.accept());
    await ready(page, "#/files");
    await page.locator("#upload-input").setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("x".repeat(300_000)) });
    await page.waitForSelector("text=/uploaded as file-/", { timeout: TIMEOUT });
    const progress = await page.locator(".uploads progress").first().evaluate((p) => p.value);
    const dropped = await page.evaluateHandle(() => {
      const data = new DataTransfer();
      data.items.add(new File(["a,b\n1,2\n"], "dropped.csv", { type: "text/csv" }));
      return data;
    });
    await page.locator("[data-testid=drop-zone]").dispatchEvent("drop", { dataTransfer: dropped });
    await page.waitForSelector("table[aria-label=Files] td:text-is('dropped.csv')", { timeout: TIMEOUT });
    const names = await page.locator("table[aria-label=Files] tbody tr td:first-child").allTextContents();
    const stores = await vectorStore(page);
    await shot(page, "files");
    await page.getByRole("button", { name: "Delete notes.txt" }).click();
    await page.waitForFunction(() => ![...document.querySelectorAll("table[aria-label=Files] td")].some((td) => td.textContent === "notes.txt"));
    const after = await page.locator("table[aria-label=Files] tbody tr td:first-child").allTextContents();
    return { progress, names, after, stores, code: await codeShown(page) };
  },

  /** A key the server does not accept is said so in plain words. */
  async badkey(context) {
    const page = await context.newPage();
    await page.goto(`${BASE}/playground/`);
    await page.getByRole("textbox", { name: "API key" }).fill("sk-not-a-real-key");
    await page.getByRole("button", { name: "Use this key" }).click();
    const error = page.locator("#key-error");
    await error.waitFor({ state: "visible", timeout: TIMEOUT });
    await shot(page, "bad-key");
    return { error: await error.textContent(), dialogOpen: await page.locator("#key-dialog[open]").count() };
  },

  /** Time from navigation start to the app's ready marker, and where every request went. */
  async perf(context) {
    const page = await context.newPage();
    const urls = [];
    page.on("request", (request) => urls.push(request.url()));
    await ready(page);
    const timing = await page.evaluate(() => ({
      ready: performance.getEntriesByName("playground-ready")[0].startTime,
      resources: performance.getEntriesByType("resource").map((r) => ({ name: r.name, bytes: r.encodedBodySize })),
    }));
    return { ...timing, urls };
  },
};

/** When the server has vector stores: create one, add a text file, wait for its ingestion status. */
async function vectorStore(page) {
  const section = page.locator("#stores-title + div");
  await section.locator("p, form").first().waitFor();
  if (!(await page.getByLabel("New vector store").count())) return { absent: await section.textContent() };
  await page.locator("#upload-input").setInputFiles({ name: "guide.txt", mimeType: "text/plain",
    buffer: Buffer.from("Assistd keeps your assistants running after the shutdown.\n") });
  await page.waitForSelector("table[aria-label=Files] td:text-is('guide.txt')");
  const name = `Playground store ${Date.now()}`;  // the server may hold other tests' stores
  await page.getByLabel("New vector store").fill(name);
  await page.getByRole("button", { name: "Create", exact: true }).click();
  const card = page.locator("article.card", { hasText: name });
  await card.getByLabel(/File to add/).selectOption({ label: "guide.txt" });
  await card.getByRole("button", { name: "Add file" }).click();
  await card.locator(".store-files li", { hasText: "guide.txt" }).locator(".badge[data-status=completed], .badge[data-status=failed]")
    .waitFor();
  return { file: await card.locator(".store-files li").first().textContent() };
}

/** In the page: answers a run's pending function calls through /v1 itself, as another client would. */
async function answer({ id, thread }) {
  const headers = { Authorization: `Bearer ${localStorage.getItem("assistd.playground.key")}`,
    "OpenAI-Beta": "assistants=v2", "Content-Type": "application/json" };
  const path = `/v1/threads/${thread}/runs/${id}`;
  const run = await (await fetch(path, { headers })).json();
  const tool_outputs = run.required_action.submit_tool_outputs.tool_calls.map((c) => ({ tool_call_id: c.id, output: "sunny" }));
  const sent = await fetch(`${path}/submit_tool_outputs`, { method: "POST", headers, body: JSON.stringify({ tool_outputs }) });
  if (!sent.ok) throw new Error(`submit_tool_outputs: ${sent.status}`);
}

/** True once n responses are in the timeline, all finished, and nothing is streaming. */
const settled = (page, n) => page.evaluate((n) => {
  const runs = [...document.querySelectorAll(".run.response")];
  return runs.length === n && runs.every((r) => ["completed", "failed", "incomplete"].includes(r.dataset.status)) &&
    document.querySelector(".timeline").getAttribute("aria-busy") === "false";
}, n);

async function codeShown(page) {
  await page.getByRole("button", { name: "Copy as code" }).click();
  const text = await page.locator("#code-text").textContent();
  await page.getByRole("button", { name: "Close" }).click();
  return text;
}

const name = process.argv[2];
const profile = mkdtempSync(join(tmpdir(), "assistd-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1280, height: 800 },
});
browser.setDefaultTimeout(TIMEOUT);
const problems = [];
browser.on("weberror", (error) => problems.push(String(error.error())));
browser.on("console", (msg) => msg.type() === "error" && problems.push(msg.text()));
try {
  if (name !== "chat" && name !== "badkey" && name !== "nokey") await withKey(browser, process.env.PLAYGROUND_ASSISTANT);
  const result = await scenarios[name](browser);
  console.log(JSON.stringify({ ...result, problems }));
} catch (error) {
  for (const [i, page] of browser.pages().entries()) await shot(page, `failed-${name}-${i}`).catch(() => {});
  console.error(problems.join("\n"));
  throw error;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
