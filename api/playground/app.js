// The playground's shell: the key, the hash router, "copy as code", and the ready marker.

import { ANY_KEY, acceptsAnyKey, check } from "./api.js";
import { snippet } from "./code.js";
import { showError } from "./dom.js";
import { last, store } from "./state.js";
import * as assistants from "./assistants.js";
import * as files from "./files.js";
import * as responses from "./responses.js";
import * as runs from "./runs.js";
import * as threads from "./threads.js";

const VIEWS = { threads, assistants, responses, files, runs };
const main = document.getElementById("main");
let leave = null;

async function route() {
  const [name = "threads", ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const view = VIEWS[name] || threads;
  for (const link of document.querySelectorAll("header nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${name}`);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  leave?.();
  showError(null);
  main.replaceChildren();
  leave = (await view.show(main, rest.map(decodeURIComponent))) || null;
}

function askKey(message) {
  const dialog = document.getElementById("key-dialog");
  const error = document.getElementById("key-error");
  error.hidden = !message;
  error.textContent = message || "";
  document.getElementById("key-input").value = store.key;
  if (!dialog.open) dialog.showModal();
}

function setUpKey() {
  const form = document.getElementById("key-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    store.key = new FormData(form).get("key").trim();
    const problem = await check();
    if (problem) return askKey(problem);
    document.getElementById("key-dialog").close();
    route();
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    store.key = "";
    askKey("");
  });
  document.getElementById("change-key").addEventListener("click", () => askKey(""));
  addEventListener("playground:unauthorized", (e) => askKey(e.detail.plain));
}

function setUpCode() {
  const dialog = document.getElementById("code-dialog");
  const text = document.getElementById("code-text");
  document.getElementById("copy-code").addEventListener("click", () => {
    text.textContent = snippet(last.action);
    dialog.showModal();
  });
  document.getElementById("code-close").addEventListener("click", () => dialog.close());
  document.getElementById("code-copy").addEventListener("click", async (event) => {
    try {
      await navigator.clipboard.writeText(text.textContent);
      event.target.textContent = "Copied";
    } catch {
      // not a secure context: select the text so Ctrl+C copies it
      getSelection().selectAllChildren(text);
      event.target.textContent = "Press Ctrl+C";
    }
    setTimeout(() => { event.target.textContent = "Copy"; }, 1500);
  });
}

async function start() {
  setUpKey();
  setUpCode();
  addEventListener("hashchange", route);
  if (!store.key && await acceptsAnyKey()) store.key = ANY_KEY;  // no dialog where no key is needed
  if (!store.key) askKey("");
  else await route();
  performance.mark("playground-ready");
  document.documentElement.dataset.ready = "true";
}

start();
