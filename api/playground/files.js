// Files (drag and drop upload with progress, list, download, delete) and vector stores
// (create, list, add files, ingestion status per file, delete), when the server has them.

import { api, fileURL, missingEndpoint, upload } from "./api.js";
import { attempt, bytes, clear, field, h, note, statusBadge, time } from "./dom.js";
import { record } from "./state.js";

const PURPOSES = ["assistants", "user_data", "vision", "batch", "fine-tune"];

/** The vector stores, or why there are none: {items, missing, message}. */
export async function vectorStores() {
  try {
    return { items: await api.all("/vector_stores"), missing: false };
  } catch (error) {
    if (missingEndpoint(error)) return { items: [], missing: true, message: "This server does not offer vector stores yet, so file search has nothing to search." };
    return { items: [], missing: true, message: `Vector stores could not be listed: ${error.plain || error.message}` };
  }
}

export async function show(main, [highlight]) {
  const view = new FilesView(main, highlight);
  await Promise.all([view.loadFiles(), view.loadStores()]);
  view.reveal();
  return () => { view.gone = true; };
}

class FilesView {
  constructor(main, highlight) {
    this.highlight = highlight;
    this.files = [];
    this.purpose = h("select", {}, PURPOSES.map((p) => h("option", { value: p }, p)));
    this.uploads = h("ul.uploads", { "aria-label": "Uploads" });
    this.table = h("div.table-wrap");
    this.stores = h("div");
    main.append(h("div.files-view", {},
      h("section.panel", { "aria-labelledby": "files-title" }, h("h2", { id: "files-title" }, "Files"), this.dropZone(), this.uploads, this.table),
      h("section.panel", { "aria-labelledby": "stores-title" }, h("h2", { id: "stores-title" }, "Vector stores"), this.stores)));
  }

  dropZone() {
    const input = h("input.visually-hidden", { type: "file", multiple: true, id: "upload-input",
      onchange: (e) => { this.upload([...e.target.files]); e.target.value = ""; } });
    const zone = h("div.drop-zone", { "data-testid": "drop-zone" },
      h("p", {}, "Drop files here, or ", input, h("label.button", { htmlFor: "upload-input" }, "choose files")),
      field("Purpose", this.purpose));
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      zone.classList.remove("over");
      this.upload([...e.dataTransfer.files]);
    });
    return zone;
  }

  async upload(files) {
    await Promise.all(files.map(async (file) => {
      const bar = h("progress", { max: 1, value: 0, "aria-label": `Uploading ${file.name}` });
      const state = h("span", {}, "uploading");
      const row = h("li", {}, h("span", {}, file.name), bar, state);
      this.uploads.append(row);
      try {
        const purpose = this.purpose.value;
        const done = await upload(file, purpose, (p) => { bar.value = p; });
        bar.value = 1;
        state.textContent = `uploaded as ${done.id}`;
        record("file.upload", { filename: file.name, purpose });
      } catch (error) {
        state.textContent = error.plain || String(error);
        state.className = "error";
      }
    }));
    await this.loadFiles();
  }

  async loadFiles() {
    const files = await attempt(() => api.all("/files"));
    if (!files) return;
    this.files = files;
    if (!files.length) return clear(this.table, note("No files yet."));
    clear(this.table, h("table", { "aria-label": "Files" },
      h("thead", {}, h("tr", {}, ["Name", "ID", "Purpose", "Size", "Created", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, files.map((f) => h("tr", { dataset: { id: f.id }, class: f.id === this.highlight ? "highlight" : null },
        h("td", {}, f.filename), h("td.mono", {}, f.id), h("td", {}, f.purpose), h("td.num", {}, bytes(f.bytes)),
        h("td", {}, time(f.created_at)),
        h("td.actions", {},
          h("button", { type: "button", onclick: () => this.download(f) }, "Download"),
          h("button.danger", { type: "button", "aria-label": `Delete ${f.filename}`, onclick: () => this.remove(f) }, "Delete")))))));
  }

  reveal() {
    this.table.querySelector("tr.highlight")?.scrollIntoView({ block: "center" });
  }

  async download(file) {
    const url = await attempt(() => fileURL(file.id));
    if (!url) return;
    const link = h("a", { href: url, download: file.filename });
    document.body.append(link);
    link.click();
    link.remove();
  }

  async remove(file) {
    if (!confirm(`Delete ${file.filename}?`)) return;
    if (await attempt(() => api.del(`/files/${file.id}`))) {
      record("file.delete", { id: file.id });
      await this.loadFiles();
    }
  }

  async loadStores() {
    const stores = await vectorStores();
    if (stores.missing) return clear(this.stores, note(stores.message));
    const name = h("input", { required: true, placeholder: "Support articles" });
    const create = h("form.inline", { onsubmit: async (e) => {
      e.preventDefault();
      const body = { name: name.value.trim() };
      if (await attempt(() => api.post("/vector_stores", body))) {
        record("vector_store.create", { body });
        await this.loadStores();
      }
    } }, field("New vector store", name), h("button.primary", { type: "submit" }, "Create"));
    clear(this.stores, create, stores.items.length ? stores.items.map((s) => this.storeCard(s)) : note("No vector stores yet."));
  }

  storeCard(vs) {
    const files = h("div");
    const head = h("div");
    const card = h("article.card", { dataset: { id: vs.id } }, head, files,
      h("div.buttons", {}, h("button.danger", { type: "button", onclick: async () => {
        if (!confirm(`Delete the vector store ${vs.name || vs.id}?`)) return;
        if (await attempt(() => api.del(`/vector_stores/${vs.id}`))) {
          record("vector_store.delete", { id: vs.id });
          await this.loadStores();
        }
      } }, "Delete store")));
    this.storeFiles(vs, files, head);
    return card;
  }

  storeHead(vs, el) {
    const counts = vs.file_counts || {};
    clear(el, h("h3", {}, vs.name || vs.id, " ", statusBadge(vs.status || "completed")),
      h("p.meta", {}, `${vs.id} · ${counts.completed ?? 0} ready, ${counts.in_progress ?? 0} in progress, ` +
        `${counts.failed ?? 0} failed · ${bytes(vs.usage_bytes || 0)}`));
  }

  /** The store's files with their ingestion status, refreshed while any is still in progress. */
  async storeFiles(vs, el, head) {
    const got = await attempt(() => Promise.all([api.get(`/vector_stores/${vs.id}`), api.all(`/vector_stores/${vs.id}/files`)]));
    if (!got || this.gone) return;
    const [store, items] = got;
    this.storeHead(store, head);
    const again = () => this.storeFiles(vs, el, head);
    const names = new Map(this.files.map((f) => [f.id, f.filename]));
    const add = h("select", { "aria-label": `File to add to ${vs.name || vs.id}` },
      this.files.filter((f) => !items.some((i) => i.id === f.id)).map((f) => h("option", { value: f.id }, f.filename)));
    clear(el,
      items.length ? h("ul.store-files", {}, items.map((item) => h("li", {},
        h("span", {}, names.get(item.id) || item.id), " ", statusBadge(item.status),
        item.last_error ? h("span.error", {}, ` ${item.last_error.message}`) : null,
        h("button.link", { type: "button", "aria-label": `Remove ${names.get(item.id) || item.id} from ${vs.name || vs.id}`,
          onclick: async () => { if (await attempt(() => api.del(`/vector_stores/${vs.id}/files/${item.id}`))) again(); } },
        "remove")))) : note("No files in this store."),
      add.options.length ? h("form.inline", { onsubmit: async (e) => {
        e.preventDefault();
        const body = { file_id: add.value };
        if (await attempt(() => api.post(`/vector_stores/${vs.id}/files`, body))) {
          record("vector_store.file", { vector_store_id: vs.id, file_id: add.value });
          again();
        }
      } }, add, h("button", { type: "submit" }, "Add file")) : null);
    if (items.some((i) => i.status === "in_progress")) setTimeout(again, 1500);
  }
}
