// Screen 1: the run parameters. Fields read from and write to the config object by JSON
// path (data-path); parts of a loaded config that no field shows are kept as they are.
import { readInputs, showInputs } from "./inputs.js";

const $ = (id) => document.getElementById(id);

const listOf = (text, number) =>
  text.split(",").map((s) => s.trim()).filter(Boolean).map((s) => (number ? Number(s) : s));

function setIn(obj, keys, value) {
  let node = obj;
  for (const key of keys.slice(0, -1)) node = node[key] ??= {};
  const last = keys[keys.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
}

// Writes the fields into `config` (keeping what they do not show).
export function fieldsToConfig(config) {
  const c = structuredClone(config);
  c.model ??= {};
  const text = (id) => $(id).value.trim() || undefined;
  const num = (id) => ($(id).value === "" ? undefined : Number($(id).value));
  c.model.path = text("model-path");
  c.model.task = text("model-task");
  setIn(c, ["model", "wrapper"], text("model-wrapper"));
  setIn(c, ["model", "output_index"], num("model-output-index"));
  c.inputs = readInputs(c.inputs);
  setIn(c, ["preprocessing", "normalize"], text("pre-normalize"));
  const resize = text("pre-resize");
  setIn(c, ["preprocessing", "resize"], resize ? listOf(resize, true) : undefined);
  const devices = text("exec-devices");
  setIn(c, ["execution", "devices"], devices ? listOf(devices) : undefined);
  setIn(c, ["execution", "workers_per_device"], num("exec-workers"));
  setIn(c, ["execution", "precision"], text("exec-precision"));
  setIn(c, ["execution", "timeout_s"], num("exec-timeout"));
  setIn(c, ["execution", "isolation"], text("exec-isolation"));
  const patch = text("exec-patch");
  setIn(c, ["execution", "patching"], patch ? { size: listOf(patch, true) } : undefined);
  c.output ??= {};
  c.output.folder = text("out-folder");
  const formats = [...document.querySelectorAll("#out-formats input:checked")].map((i) => i.value);
  c.output.formats = formats.length ? formats : undefined;
  for (const key of ["preprocessing", "execution"]) {
    if (c[key] && Object.keys(c[key]).length === 0) delete c[key];
  }
  return JSON.parse(JSON.stringify(c));
}

// Shows a loaded config in the fields; `changed` runs when an input row is added or removed.
export function configToFields(c, changed) {
  const set = (id, v) => { $(id).value = v ?? ""; };
  set("model-path", c.model?.path);
  set("model-task", c.model?.task || "classification");
  set("model-wrapper", c.model?.wrapper);
  set("model-output-index", c.model?.output_index);
  showInputs(c.inputs || [], changed);
  const normalize = c.preprocessing?.normalize;
  set("pre-normalize", typeof normalize === "string" ? normalize : "");
  set("pre-resize", (c.preprocessing?.resize || []).join(","));
  set("exec-devices", (c.execution?.devices || []).join(","));
  set("exec-workers", c.execution?.workers_per_device);
  set("exec-precision", c.execution?.precision);
  set("exec-timeout", c.execution?.timeout_s);
  set("exec-isolation", c.execution?.isolation);
  set("exec-patch", (c.execution?.patching?.size || []).join(","));
  set("out-folder", c.output?.folder);
  const formats = c.output?.formats || ["npy", "png"];
  for (const box of document.querySelectorAll("#out-formats input")) box.checked = formats.includes(box.value);
}
