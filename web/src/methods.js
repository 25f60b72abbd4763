// Screens 2 and 3: the methods, grouped by family and kind with a search box, and for each
// chosen method a parameter form generated from its JSON Schema by @json-editor/json-editor.
import { JSONEditor } from "@json-editor/json-editor";

const $ = (id) => document.getElementById(id);
let all = [];
// id -> {editor, container, name}
export const chosen = new Map();
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
      box.checked = chosen.has(m.id);
      box.onchange = () => (box.checked ? choose(m.id) : unchoose(m.id));
      div.append(label);
    }
    list.append(div);
  }
}

// Adds the method's form, with `params` (from a loaded config) filled in.
export function choose(id, params = {}, name = undefined, layer = undefined) {
  if (chosen.has(id)) return chosen.get(id);
  const method = all.find((m) => m.id === id);
  if (!method) return null;
  const container = document.createElement("div");
  container.className = "method-form";
  container.dataset.method = id;
  container.innerHTML = `<h3>${id}</h3><div class="server-errors"></div><div class="form"></div>`;
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
  const entry = { editor, container, name, ready: false };
  chosen.set(id, entry);
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

export function unchoose(id) {
  const entry = chosen.get(id);
  if (!entry) return;
  entry.editor.destroy();
  entry.container.remove();
  chosen.delete(id);
  const box = document.querySelector(`input[data-method="${id}"]`);
  if (box) box.checked = false;
  changed();
}

export function clearMethods() { for (const id of [...chosen.keys()]) unchoose(id); }

// The config's `methods` list.
export function methodSpecs() {
  return [...chosen].map(([id, { editor, name, ready }]) => {
    const spec = { id };
    if (name) spec.name = name;
    const layer = chosen.get(id).container.querySelector("input.layer")?.value.trim();
    if (layer) spec.layer = layer;
    const params = ready ? editor.getValue() : {};
    if (params && Object.keys(params).length) spec.params = params;
    return spec;
  });
}

// Shows each problem under `methods[i].params` at its field, others at the form's top.
export function showMethodErrors(errors) {
  const ids = [...chosen.keys()];
  for (const { container } of chosen.values()) {
    container.querySelectorAll(".server-error").forEach((e) => e.remove());
    container.querySelectorAll(".invalid").forEach((e) => e.classList.remove("invalid"));
  }
  const rest = [];
  for (const error of errors) {
    const m = error.path.match(/^methods\[(\d+)\](?:\.params)?\.?(.*)$/);
    const entry = m && chosen.get(ids[Number(m[1])]);
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
