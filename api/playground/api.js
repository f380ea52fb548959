// The only way the playground reaches Assistd: the public /v1 API with the user's key.

import { store } from "./state.js";

export const BASE = new URL("/v1", location.origin).href;

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body?.error || {};
    super(detail.message || `HTTP ${status}`);
    this.status = status;
    this.type = detail.type;
    this.param = detail.param;
    this.code = detail.code;
    this.plain = plainWords(status, detail);
  }
}

function plainWords(status, detail) {
  if (status === 401) return "Your API key was not accepted. Check it under “API key” and try again.";
  if (status === 0) return "Could not reach the server. Is Assistd running?";
  const message = detail.message || "The server gave no reason.";
  if (status === 404) return `Not found: ${message}`;
  if (status === 429) return `Too many requests: ${message}`;
  if (status >= 500) return `The server had a problem (${status}): ${message}`;
  return detail.param ? `${message} (parameter “${detail.param}”)` : message;
}

export function headers(extra = {}) {
  return { Authorization: `Bearer ${store.key}`, "OpenAI-Beta": "assistants=v2", ...extra };
}

async function failure(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: keep the status */ }
  const error = new ApiError(response.status, body);
  if (response.status === 401) dispatchEvent(new CustomEvent("playground:unauthorized", { detail: error }));
  return error;
}

async function send(method, path, body, init = {}) {
  let response;
  try {
    response = await fetch(BASE + path, {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
      ...init,
    });
  } catch (cause) {
    if (cause.name === "AbortError") throw cause;
    throw new ApiError(0, null);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

export const api = {
  get: async (path) => (await send("GET", path)).json(),
  post: async (path, body = {}) => (await send("POST", path, body)).json(),
  del: async (path) => (await send("DELETE", path)).json(),
  /** Every page of a list endpoint (cursor pagination with `after`). */
  async all(path, limit = 100) {
    const items = [];
    let after = null;
    for (;;) {
      const sep = path.includes("?") ? "&" : "?";
      const page = await api.get(`${path}${sep}limit=${limit}${after ? `&after=${after}` : ""}`);
      items.push(...page.data);
      if (!page.has_more || !page.data.length) return items;
      after = page.last_id;
    }
  },
  /** POST with `stream: true`; yields {event, data} as the server sends them. */
  async *stream(path, body, signal) {
    const response = await send("POST", path, { ...body, stream: true }, { signal });
    yield* events(response.body);
  },
};

/** Parses a text/event-stream body (EventSource cannot POST, so fetch + ReadableStream). */
export async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const parsed = parseBlock(block);
      if (parsed) yield parsed;
    }
  }
}

function parseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // comments are keep-alives
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "event") event = value;
    else if (name === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  if (text === "[DONE]") return { event, data: null };
  return { event, data: JSON.parse(text) };
}

/** Uploads one file with progress (fetch has no upload progress; XMLHttpRequest does). */
export function upload(file, purpose, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${BASE}/files`);
    for (const [name, value] of Object.entries(headers())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress?.(e.loaded / e.total);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* keep null */ }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
      const error = new ApiError(xhr.status, body);
      if (xhr.status === 401) dispatchEvent(new CustomEvent("playground:unauthorized", { detail: error }));
      reject(error);
    };
    xhr.onerror = () => reject(new ApiError(0, null));
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

const blobs = new Map();

/** A blob: URL for a file's bytes, fetched with the auth header (an <img src> cannot send it). */
export async function fileURL(fileId) {
  if (!blobs.has(fileId)) {
    blobs.set(fileId, (async () => {
      const response = await send("GET", `/files/${encodeURIComponent(fileId)}/content`);
      return URL.createObjectURL(await response.blob());
    })());
  }
  return blobs.get(fileId);
}

/** Checks the stored key against the API: null when accepted, else what went wrong in plain words. */
export async function check() {
  try {
    await send("GET", "/assistants?limit=1");
    return null;
  } catch (error) {
    return error.plain || String(error);
  }
}

/** A key for a server that accepts any (embedded mode without ASSISTD_API_KEYS): it needs none
 * from the user. The server says so itself (asking /v1 with a made-up key would log a 401). */
export const ANY_KEY = "sk-playground";

export async function acceptsAnyKey() {
  try {
    const response = await fetch(new URL("/playground/server.json", location.origin));
    return response.ok && (await response.json()).key_required === false;
  } catch {
    return false;
  }
}

/** The model ids GET /v1/models lists; none when it cannot say (the pickers take any name anyway). */
export async function modelIds() {
  try {
    return (await api.get("/models")).data.map((m) => m.id);
  } catch (error) {
    console.warn("models could not be listed", error);
    return [];
  }
}

/** True when the server has no such endpoint (as opposed to no such object). */
export function missingEndpoint(error) {
  return error instanceof ApiError && (error.status === 404 || error.status === 405) &&
    /Invalid (URL|method)/.test(error.message);
}
