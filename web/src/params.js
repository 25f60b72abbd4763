// Screen 1: the run parameters. Fields read from and write to the config object by JSON
// path (data-path); parts of a loaded config that no field shows are kept as they are.
import { inputs, models } from "./inputs.js";

const $ = (id) => document.getElementById(id);
// What a run writes when its config names no formats (NIfTI inputs add nii.gz).
const DEFAULT_FORMATS = ["npy", "png"];

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
  const text = (id) => $(id).value.trim() || undefined;
  const num = (id) => ($(id).value === "" ? undefined : Number($(id).value));
  const rows = models.read(c.models ?? [c.model ?? {}]);
  delete c.model;
  delete c.models;
  if (rows.length === 1) c.model = rows[0];
  else c.models = rows;
  c.inputs = inputs.read(c.inputs);
  const [mean, std] = [text("pre-mean"), text("pre-std")];
  // Per-channel statistics replace the whole-input normalisation (one `normalize` key).
  const stats = mean || std ? { mean: mean ? listOf(mean, true) : [], std: std ? listOf(std, true) : [] } : undefined;
  setIn(c, ["preprocessing", "normalize"], stats ?? text("pre-normalize"));
  const [crop, resize] = [text("pre-crop"), text("pre-resize")];
  setIn(c, ["preprocessing", "crop"], crop ? listOf(crop, true) : undefined);
  setIn(c, ["preprocessing", "resize"], resize ? listOf(resize, true) : undefined);
  setIn(c, ["preprocessing", "channel_order"], text("pre-channel-order"));
  const devices = text("exec-devices");
  setIn(c, ["execution", "devices"], devices ? listOf(devices) : undefined);
  setIn(c, ["execution", "workers_per_device"], num("exec-workers"));
  setIn(c, ["execution", "precision"], text("exec-precision"));
  setIn(c, ["execution", "timeout_s"], num("exec-timeout"));
  setIn(c, ["execution", "isolation"], text("exec-isolation"));
  setIn(c, ["execution", "memory_budget_mb"], num("exec-memory"));
  setIn(c, ["execution", "seed"], num("exec-seed"));
  const patch = text("exec-patch");
  const patching = patch ? { ...(c.execution?.patching || {}), size: listOf(patch, true) } : undefined;
  if (patching) {
    setIn(patching, ["overlap"], num("exec-patch-overlap"));
    setIn(patching, ["blending"], text("exec-patch-blending"));
  }
  setIn(c, ["execution", "patching"], patching);
  if ($("rand-on").checked) {
    const r = { ...(c.randomisation || {}) };
    setIn(r, ["granularity"], text("rand-granularity"));
    const methods = text("rand-methods");
    setIn(r, ["methods"], methods ? listOf(methods) : undefined);
    setIn(r, ["seed"], num("rand-seed"));
    c.randomisation = r;
  } else delete c.randomisation;
  c.output ??= {};
  c.output.folder = text("out-folder");
  const formats = [...document.querySelectorAll("#out-formats input:checked")].map((i) => i.value);
  // The boxes start at the run's default (npy and png): a config that left formats out
  // keeps leaving them out until a box changes.
  const unchanged = !config.output?.formats && formats.join() === DEFAULT_FORMATS.join();
  c.output.formats = formats.length && !unchanged ? formats : undefined;
  for (const key of ["preprocessing", "execution"]) {
    if (c[key] && Object.keys(c[key]).length === 0) delete c[key];
  }
  return JSON.parse(JSON.stringify(c));
}

// Shows a loaded config in the fields; `changed` runs when an input row is added or removed.
export function configToFields(c, changed) {
  const set = (id, v) => { $(id).value = v ?? ""; };
  models.show(c.models ?? [c.model ?? {}], changed);
  inputs.show(c.inputs || [], changed);
  const normalize = c.preprocessing?.normalize;
  set("pre-normalize", typeof normalize === "string" ? normalize : "");
  set("pre-mean", (normalize?.mean || []).join(","));
  set("pre-std", (normalize?.std || []).join(","));
  set("pre-crop", (c.preprocessing?.crop || []).join(","));
  set("pre-resize", (c.preprocessing?.resize || []).join(","));
  set("pre-channel-order", c.preprocessing?.channel_order);
  set("exec-devices", (c.execution?.devices || []).join(","));
  set("exec-workers", c.execution?.workers_per_device);
  set("exec-precision", c.execution?.precision);
  set("exec-timeout", c.execution?.timeout_s);
  set("exec-isolation", c.execution?.isolation);
  set("exec-patch", (c.execution?.patching?.size || []).join(","));
  set("exec-patch-overlap", c.execution?.patching?.overlap);
  set("exec-patch-blending", c.execution?.patching?.blending);
  set("exec-memory", c.execution?.memory_budget_mb);
  set("exec-seed", c.execution?.seed);
  $("rand-on").checked = Boolean(c.randomisation);
  set("rand-granularity", c.randomisation?.granularity);
  set("rand-methods", (c.randomisation?.methods || []).join(","));
  set("rand-seed", c.randomisation?.seed);
  set("out-folder", c.output?.folder);
  const formats = c.output?.formats || DEFAULT_FORMATS;
  for (const box of document.querySelectorAll("#out-formats input")) box.checked = formats.includes(box.value);
}
