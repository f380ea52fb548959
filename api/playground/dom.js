// Tiny DOM helpers. API content is only ever set as text (never innerHTML), so a message
// cannot inject markup; the content security policy backs this up.

/** h("button.primary", {onclick}, "Save") -> <button class="primary">Save</button> */
export function h(tag, props = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value") el.value = value; // a textarea's text is its property, not an attribute
    else if (key === "htmlFor") el.setAttribute("for", value);
    else if (typeof value !== "string" && key in el) el[key] = value; // checked, disabled, rows, spellcheck...
    else if (value !== false) el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let fieldIds = 0;

/** A labelled form field: the label points at the control. */
export function field(label, control, hint) {
  control.id ||= `f${++fieldIds}`;
  const hintEl = hint ? h("small.hint", { id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div.field", {}, h("label", { htmlFor: control.id }, label), control, hintEl);
}

export function time(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 60) return `${seconds} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${seconds % 60} s`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function statusBadge(status) {
  return h("span.badge", { dataset: { status }, "data-testid": "status" }, status.replace("_", " "));
}

/** Shows an error (or clears it) in the page's alert region, in plain words. */
export function showError(error) {
  const region = document.getElementById("errors");
  if (!error) return region.replaceChildren();
  const text = typeof error === "string" ? error : error.plain || error.message;
  clear(region, h("div.error", { role: "alert" }, h("span", {}, text),
    h("button.link", { type: "button", onclick: () => region.replaceChildren(), "aria-label": "Dismiss" }, "×")));
}

/** Runs an async action; its error goes to the alert region. Returns the action's result. */
export async function attempt(action) {
  try {
    showError(null);
    return await action();
  } catch (error) {
    console.error(error);
    showError(error);
    return undefined;
  }
}

export function note(text) {
  return h("p.note", {}, text);
}
