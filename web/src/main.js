// The page of `esegeta serve`: builds a run config from the forms, checks it on the server as
// it changes (problems shown at their fields), runs it and shows the results.
import { api, post } from "./api.js";
import { fieldsToConfig, configToFields } from "./params.js";
import { browse } from "./browser.js";
import { initMethods, methodSpecs, showMethodErrors, choose, clearMethods } from "./methods.js";
import { startRun, follow } from "./run.js";
import { showResults } from "./results.js";

const $ = (id) => document.getElementById(id);
// What a loaded config holds beyond the fields (kept for the round trip).
let base = { model: { task: "classification" }, inputs: [{}], output: { folder: "out/gui-run" } };
let lastCheck = { ok: false };
let timer = null;
let checking = 0;

export function currentConfig() {
  const config = fieldsToConfig(base);
  config.methods = methodSpecs();
  return config;
}

// Offers the model's layers to layer fields when the model or input changes.
let layersFor = "";
async function loadLayers() {
  const model = $("model-path").value.trim();
  const input = $("input-path").value.trim();
  const key = `${model}|${input}`;
  if (!model.endsWith(".onnx") || key === layersFor) return;
  layersFor = key;
  const query = `model=${encodeURIComponent(model)}&input=${input.includes("*") ? "" : encodeURIComponent(input)}`;
  const { ok, body } = await api(`/api/layers?${query}`);
  $("layers-list").innerHTML = "";
  for (const layer of ok ? body.layers : []) {
    const option = document.createElement("option");
    option.value = layer.name;
    option.label = `${layer.op}${layer.shape ? ` ${JSON.stringify(layer.shape)}` : ""}`;
    $("layers-list").append(option);
  }
}

function refresh() {
  loadLayers();
  $("config-json").textContent = JSON.stringify(currentConfig(), null, 2);
  $("run-start").disabled = true;
  $("check-state").textContent = "checking…";
  $("check-state").dataset.state = "pending";
  clearTimeout(timer);
  timer = setTimeout(check, 400);
}

async function check() {
  const mine = ++checking;
  const config = currentConfig();
  const { ok, body } = await post("/api/check", config);
  if (mine !== checking) return;
  lastCheck = ok ? body : { ok: false, errors: [{ path: "", message: body.error }] };
  showErrors(lastCheck.errors || []);
  $("run-start").disabled = !lastCheck.ok;
  $("check-state").textContent = lastCheck.ok ? `valid: ${lastCheck.jobs} job(s)` : `${lastCheck.errors.length} problem(s)`;
  $("check-state").dataset.state = lastCheck.ok ? "ok" : "invalid";
}

function showErrors(errors) {
  document.querySelectorAll("#screen-params .error").forEach((e) => e.remove());
  document.querySelectorAll("#screen-params .invalid").forEach((e) => e.classList.remove("invalid"));
  const rest = showMethodErrors(errors);
  const general = [];
  for (const error of rest) {
    const fields = [...document.querySelectorAll("#screen-params [data-path]")];
    const field = fields.find((f) => error.path === f.dataset.path || error.path.startsWith(`${f.dataset.path}.`) || error.path.startsWith(`${f.dataset.path}[`))
      || fields.find((f) => error.path && f.dataset.path.startsWith(`${error.path}.`));
    if (field) {
      field.classList.add("invalid");
      const div = document.createElement("div");
      div.className = "error";
      div.dataset.path = error.path;
      div.textContent = error.message;
      field.closest("label").append(div);
    } else general.push(error);
  }
  for (const target of ["errors-params", "errors-general"]) {
    $(target).innerHTML = "";
    for (const error of general) {
      const div = document.createElement("div");
      div.className = "error";
      div.textContent = error.path ? `${error.path}: ${error.message}` : error.message;
      $(target).append(div);
    }
  }
}

function screen(name) {
  document.querySelectorAll(".screen").forEach((s) => s.classList.toggle("active", s.id === `screen-${name}`));
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.screen === name));
}

export function loadConfig(config) {
  base = structuredClone(config);
  delete base.methods;
  configToFields(config, refresh);
  clearMethods();
  for (const { id, params, name, layer, ...rest } of config.methods || []) choose(id, params || {}, name, layer, rest);
  refresh();
}

async function earlierRuns() {
  const { body } = await api("/api/runs");
  const list = $("earlier-runs");
  list.innerHTML = "";
  for (const run of body || []) {
    const li = document.createElement("li");
    li.innerHTML = `<a href="#"></a>`;
    li.firstChild.textContent = `${run.id}: ${run.status} (${run.folder})`;
    li.firstChild.onclick = (e) => { e.preventDefault(); follow(run.id, showResults); };
    list.append(li);
  }
}

async function main() {
  document.querySelectorAll(".tab").forEach((t) => (t.onclick = () => screen(t.dataset.screen)));
  // Delegated: input rows come and go.
  for (const event of ["input", "change"]) {
    $("screen-params").addEventListener(event, (e) => {
      if (e.target.matches("input, select")) refresh();
    });
  }
  $("screen-params").addEventListener("click", (e) => {
    const b = e.target.closest(".browse");
    if (b) browse((path) => {
      $(b.dataset.for).value = path;
      refresh();
    });
  });
  $("config-download").onclick = () => {
    const blob = new Blob([JSON.stringify(currentConfig(), null, 2) + "\n"], { type: "application/json" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "esegeta-run.json";
    a.click();
  };
  $("config-load").onchange = async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const text = (await file.text()).replace(/^\s*\/\/.*$/gm, "");
    try { loadConfig(JSON.parse(text)); } catch (err) { showErrors([{ path: "", message: `${file.name} is not a JSON config: ${err.message}` }]); }
  };
  $("run-start").onclick = async () => {
    $("run-start").disabled = true;
    const problems = await startRun(currentConfig(), async (id) => { await showResults(id); earlierRuns(); });
    if (problems.length) showErrors(problems);
  };
  const { body: methods } = await api("/api/methods");
  initMethods(methods, refresh);
  configToFields(base, refresh);
  refresh();
  earlierRuns();
  window.esegeta = { currentConfig, loadConfig };
  document.body.dataset.ready = "true";
}

main();
