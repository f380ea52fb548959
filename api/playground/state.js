// What the playground keeps in the browser: the key, the threads it created, recent models,
// and the last thing the user did (for "copy as code").

const KEY = "assistd.playground.key";
const THREADS = "assistd.playground.threads";
const MODELS = "assistd.playground.models";
const ASSISTANT = "assistd.playground.assistant";

function read(name, fallback) {
  try { return JSON.parse(localStorage.getItem(name)) ?? fallback; } catch { return fallback; }
}

function write(name, value) {
  localStorage.setItem(name, JSON.stringify(value));
}

export const store = {
  get key() { return localStorage.getItem(KEY) || ""; },
  set key(value) { value ? localStorage.setItem(KEY, value) : localStorage.removeItem(KEY); },

  /** Threads this browser created, newest first: [{id, title, created_at}]. */
  get threads() { return read(THREADS, []); },
  addThread(thread, title) {
    write(THREADS, [{ id: thread.id, title, created_at: thread.created_at }, ...this.threads]);
  },
  renameThread(id, title) {
    write(THREADS, this.threads.map((t) => (t.id === id && !t.title ? { ...t, title } : t)));
  },
  forgetThread(id) { write(THREADS, this.threads.filter((t) => t.id !== id)); },

  get models() { return read(MODELS, []); },
  useModel(name) {
    if (name) write(MODELS, [name, ...this.models.filter((m) => m !== name)].slice(0, 12));
  },

  get assistant() { return localStorage.getItem(ASSISTANT) || ""; },
  set assistant(id) { localStorage.setItem(ASSISTANT, id); },
};

/** The last action, as the Python SDK would do it (see code.js). */
export const last = { action: null };

export function record(kind, params) {
  last.action = { kind, params };
  dispatchEvent(new CustomEvent("playground:action"));
}
