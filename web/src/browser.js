// The file browser of the roots: picks a model, an input or a config file into a field.
import { api } from "./api.js";

const $ = (id) => document.getElementById(id);
let onPick = null;

async function show(path) {
  const { ok, body } = await api(`/api/files?path=${encodeURIComponent(path)}`);
  const list = $("browser-list");
  list.innerHTML = "";
  $("browser-path").textContent = ok ? body.path || "(roots)" : body.error;
  if (!ok) return;
  if (body.path) {
    const up = document.createElement("li");
    up.textContent = "⬑ up";
    const parent = body.path.includes("/") ? body.path.replace(/\/[^/]*$/, "") : "";
    up.onclick = () => show(parent === "." ? "" : parent);
    list.append(up);
  }
  for (const entry of body.entries) {
    const li = document.createElement("li");
    li.textContent = entry.dir ? `📁 ${entry.name}` : `📄 ${entry.name}`;
    li.dataset.path = entry.path;
    li.onclick = () => (entry.dir ? show(entry.path) : pick(entry.path));
    list.append(li);
  }
}

function pick(path) {
  $("browser").classList.add("hidden");
  onPick?.(path);
}

// Opens the browser; `done(path)` gets the chosen file.
export function browse(done, start = ".") {
  onPick = done;
  $("browser").classList.remove("hidden");
  show(start);
}

$("browser-close").onclick = () => $("browser").classList.add("hidden");
