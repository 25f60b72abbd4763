// Screens 2 and 3: the methods, grouped by family and kind with a search box, and for each
// chosen method a parameter form generated from its JSON Schema by @json-editor/json-editor.
import { JSONEditor } from "@json-editor/json-editor";

const $ = (id) => document.getElementById(id);
let all = [];
// The config's method entries, in order: name (or the id, for an unnamed entry) ->
// {id, editor, container, name}. One method can have several entries, each named (a metric
// of each of three maps, say).
export const chosen = new Map();
const entriesOf = (id) => [...chosen.values()].filter((e) => e.id === id);
let changed = () => {};

// Inlines every local `$ref` (json-editor reads `definitions`, the schemas use 2020-12 `$defs`)
// and turns `type: [T, "null"]` into T: the form's opt-in box stands for "not set".
export function prepare(schema) {
  const defs = schema.$defs || {};
  const walk = (node, depth) => {
    if (Array.isArray(node)) return node.map((n) => walk(n, depth));
    if (!node || typeof node !== "object") return node;
    if (typeof node.$ref === "string" && node.$ref.startsWith("#/$defs/") && depth < 12) {
      const target = defs[node.$ref.slice(8)] || {};
      const { $ref, ...rest } = node;
      return walk({ ...target, ...rest }, depth + 1);
    }
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === "$defs" || k === "$schema") continue;
      out[k] = walk(v, depth);
    }
    if (Array.isArray(out.type) && out.type.includes("null")) {
      const types = out.type.filter((t) => t !== "null");
      out.type = types.length === 1 ? types[0] : types;
    }
    // `anyOf: [X, null]` (an optional X) is X.
    const branches = out.anyOf || out.oneOf;
    if (branches?.length === 2 && branches.some((b) => b.type === "null")) {
      const inner = branches.find((b) => b.type !== "null");
      delete out.anyOf; delete out.oneOf;
      Object.assign(out, { ...inner, ...out });
    }
    // One-constant-per-branch `oneOf` (an enum with descriptions): a plain enum.
    if (out.oneOf?.every((b) => "const" in b)) {
      out.enum = out.oneOf.map((b) => b.const);
      out.type ??= "string";
      delete out.oneOf;
    }
    return out;
  };
  return walk(schema, 0);
}

export function family(id) { return id.split(".")[0]; }

export function initMethods(methods, onChange) {
  all = methods;
  changed = onChange;
  $("method-search").oninput = render;
  render();
}

function render() {
  const query = $("method-search").value.toLowerCase();
  const list = $("method-list");
  list.innerHTML = "";
  const groups = new Map();
  for (const m of all) {
    const text = `${m.id} ${m.title} ${m.summary}`.toLowerCase();
    if (query && !text.includes(query)) continue;
    const key = `${family(m.id)} · ${m.kind}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(m);
  }
  for (const [key, methods] of [...groups].sort()) {
    const div = document.createElement("div");
    div.className = "family";
    div.innerHTML = `<h3>${key}</h3>`;
    for (const m of methods) {
      const label = document.createElement("label");
      label.className = "method";
      label.innerHTML = `<input type="checkbox" data-method="${m.id}"> <b>${m.id}</b> — ${m.title}
        <div class="summary"></div><div class="ref"></div>`;
      label.querySelector(".summary").textContent = m.summary;
      label.querySelector(".ref").textContent = m.reference;
      const box = label.querySelector("input");
      box.checked = entriesOf(m.id).length > 0;
      box.onchange = () => (box.checked ? choose(m.id) : unchoose(m.id));
      div.append(label);
    }
    list.append(div);
  }
}

// Adds a form for an entry of the method, with `params` (from a loaded config) filled in.
// `rest`: the entry's other keys (device, precision, patching, timeout_s, outputs), kept.
export function choose(id, params = {}, name = undefined, layer = undefined, rest = {}) {
  const key = name || id;
  if (chosen.has(key)) return chosen.get(key);
  const method = all.find((m) => m.id === id);
  if (!method) return null;
  const container = document.createElement("div");
  container.className = "method-form";
  container.dataset.method = id;
  container.dataset.entry = key;
  container.innerHTML = `<h3></h3><label>name (labels its outputs; needed when the method appears twice)
    <input class="entry-name"></label> <button class="entry-another">Add another entry of this method</button>
    <div class="server-errors"></div><div class="form"></div>`;
  container.querySelector("h3").textContent = id;
  const nameField = container.querySelector("input.entry-name");
  nameField.value = name || "";
  nameField.onchange = () => rename(key, nameField.value.trim());
  container.querySelector("button.entry-another").onclick = () => {
    const base = id.split(".").pop();
    let n = 2;
    while (chosen.has(`${base}_${n}`)) n += 1;
    choose(id, {}, `${base}_${n}`);
    changed();
  };
  if (method.needs?.layers) {
    // The model's layers (/api/layers) are offered in #layers-list.
    const label = document.createElement("label");
    label.innerHTML = `layer <input class="layer" list="layers-list" placeholder="a layer of the model">`;
    label.querySelector("input").value = layer || "";
    label.querySelector("input").oninput = () => changed();
    container.querySelector(".server-errors").after(label);
  }
  $("method-forms").append(container);
  const schema = prepare(method.params_schema || { type: "object" });
  schema.title = method.title;
  const editor = new JSONEditor(container.querySelector(".form"), {
    schema,
    startval: params,
    show_opt_in: true,
    show_errors: "never",
    disable_edit_json: true,
    disable_properties: true,
    disable_collapse: true,
    no_additional_properties: true,
    remove_empty_properties: false,
    use_default_values: true,
    prompt_before_delete: false,
  });
  const entry = { id, editor, container, name, rest, ready: false };
  chosen.set(key, entry);
  editor.on("ready", () => {
    entry.ready = true;
    if (params && Object.keys(params).length) editor.setValue(params);
    editor.on("change", () => changed());
    changed();
  });
  const box = document.querySelector(`input[data-method="${id}"]`);
  if (box) box.checked = true;
  return entry;
}

// Renames an entry, keeping its place in the list (an empty name: the id again).
function rename(key, name) {
  const entries = [...chosen.entries()];
  const i = entries.findIndex(([k]) => k === key);
  const entry = entries[i][1];
  const next = name || entry.id;
  if (next !== key && chosen.has(next)) return; // two entries cannot share a name
  entry.name = name || undefined;
  entry.container.dataset.entry = next;
  entries[i] = [next, entry];
  chosen.clear();
  for (const [k, e] of entries) chosen.set(k, e);
  changed();
}

// Removes every entry of the method (its box on screen 2 unticked).
export function unchoose(id) {
  for (const [key, entry] of [...chosen]) {
    if (entry.id !== id) continue;
    entry.editor.destroy();
    entry.container.remove();
    chosen.delete(key);
  }
  const box = document.querySelector(`input[data-method="${id}"]`);
  if (box) box.checked = false;
  changed();
}

export function clearMethods() { for (const id of new Set([...chosen.values()].map((e) => e.id))) unchoose(id); }

// The config's `methods` list.
export function methodSpecs() {
  return [...chosen.values()].map(({ id, editor, name, ready, container, rest }) => {
    const spec = { id, ...rest };
    if (name) spec.name = name;
    const layer = container.querySelector("input.layer")?.value.trim();
    if (layer) spec.layer = layer;
    const params = ready ? editor.getValue() : {};
    // An empty text field is a value not given (json-editor writes "" for a shown field
    // nobody filled, e.g. a metric's optional `mask`): left out, as a config leaves it out.
    for (const [key, value] of Object.entries(params || {})) if (value === "") delete params[key];
    if (params && Object.keys(params).length) spec.params = params;
    return spec;
  });
}

// Shows each problem under `methods[i].params` at its field, others at the form's top.
export function showMethodErrors(errors) {
  const entries = [...chosen.values()];
  for (const { container } of entries) {
    container.querySelectorAll(".server-error").forEach((e) => e.remove());
    container.querySelectorAll(".invalid").forEach((e) => e.classList.remove("invalid"));
  }
  const rest = [];
  for (const error of errors) {
    const m = error.path.match(/^methods\[(\d+)\](?:\.params)?\.?(.*)$/);
    const entry = m && entries[Number(m[1])];
    if (!entry) { rest.push(error); continue; }
    const layer = error.path === `methods[${m[1]}].layer` && entry.container.querySelector("input.layer");
    const sub = layer
      ? { container: layer.closest("label") }
      : m[2] && error.path.includes(".params.")
        ? entry.editor.getEditor(`root.${m[2].replace(/\[(\d+)\]/g, ".$1")}`)
        : null;
    const div = document.createElement("div");
    div.className = "server-error";
    div.dataset.path = error.path;
    div.textContent = error.message;
    if (sub?.container) {
      sub.container.append(div);
      sub.container.querySelector("input,select,textarea")?.classList.add("invalid");
    } else {
      entry.container.querySelector(".server-errors").append(div);
    }
  }
  return rest;
}
