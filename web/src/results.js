// Screen 4, results: the run's report, each 2D map drawn over its input with an opacity and a
// colour scale, and each 3D map over its scan in @niivue/niivue (three planes, sliders,
// opacity, colour map, threshold); the metric tables, sortable; every file to download.
import { Niivue } from "@niivue/niivue";
import { api, rawUrl } from "./api.js";

const $ = (id) => document.getElementById(id);

export async function showResults(id) {
  const { body } = await api(`/api/runs/${id}`);
  const out = $("results");
  out.innerHTML = "";
  const file = (f) => `/api/runs/${id}/files/${relative(f, body)}`;
  const report = document.createElement("p");
  report.innerHTML = `<a target="_blank" id="report-link" href="/api/runs/${id}/files/report.html">Open the report</a>`;
  out.append(report);
  for (const job of body.manifest?.jobs || []) {
    const box = document.createElement("div");
    box.className = "viewer";
    box.dataset.job = job.id;
    box.innerHTML = `<h4></h4><div class="links"></div>`;
    box.querySelector("h4").textContent = `${job.id} (${job.status})`;
    for (const f of job.files) {
      const a = document.createElement("a");
      a.href = file(f); a.textContent = f.split("/").pop(); a.download = "";
      box.querySelector(".links").append(a, " ");
    }
    const npy = job.files.find((f) => f.endsWith(".npy"));
    const nii = job.files.find((f) => f.endsWith(".nii.gz"));
    if (nii) addVolumeButton(box, file(nii), job.input, body);
    else if (npy && /\.(png|jpe?g)$/i.test(job.input)) addOverlay(box, file(npy), job.input, body);
    out.append(box);
  }
  await metricTables(out, id, body);
}

// The report's metric tables (tables/<metric>.csv: rows the methods scored, columns the
// models), each sortable by a click on its header, with the CSV to download.
async function metricTables(out, id, run) {
  const folder = `${run.folder.replace(/\/$/, "")}/tables`;
  const { ok, body } = await api(`/api/files?path=${encodeURIComponent(folder)}`);
  if (!ok) return;
  for (const entry of body.entries.filter((e) => e.name.endsWith(".csv"))) {
    const url = `/api/runs/${id}/files/tables/${encodeURIComponent(entry.name)}`;
    const text = await (await fetch(url)).text();
    const [head, ...rows] = text.trim().split("\n").map((line) => line.split(","));
    const box = document.createElement("div");
    box.className = "metric-table";
    box.dataset.metric = entry.name.replace(/\.csv$/, "");
    box.innerHTML = `<h4></h4><table><thead><tr></tr></thead><tbody></tbody></table><a download>download CSV</a>`;
    box.querySelector("h4").textContent = box.dataset.metric;
    box.querySelector("a").href = url;
    for (const [i, name] of head.entries()) {
      const th = document.createElement("th");
      th.textContent = name;
      th.onclick = () => sortBy(box, i);
      box.querySelector("thead tr").append(th);
    }
    for (const row of rows) {
      const tr = document.createElement("tr");
      for (const cell of row) tr.insertCell().textContent = cell;
      box.querySelector("tbody").append(tr);
    }
    out.append(box);
  }
}

// Sorts a metric table's rows by column `i` (numbers as numbers, blanks last); a second click
// on the same column reverses the order.
function sortBy(box, i) {
  const body = box.querySelector("tbody");
  const descending = box.dataset.sorted === String(i);
  box.dataset.sorted = descending ? "" : String(i);
  const key = (tr) => tr.cells[i].textContent;
  const rows = [...body.rows].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    if (x === "" || y === "") return (x === "") - (y === "");
    const order = isNaN(x) || isNaN(y) ? x.localeCompare(y) : Number(x) - Number(y);
    return descending ? -order : order;
  });
  body.append(...rows);
}

// A manifest path relative to the run's folder.
function relative(path, run) {
  const folder = run.folder.replace(/\/$/, "");
  const i = path.indexOf(`${folder}/`);
  if (i >= 0) return path.slice(i + folder.length + 1);
  return path.split("/").slice(-2).join("/");
}

// The input's path as the roots name it (manifests record it relative to the server's root).
const inputPath = (input) => input;

// A little-endian float32 .npy (what esegeta writes): its shape and values.
function parseNpy(buffer) {
  const view = new DataView(buffer);
  const major = view.getUint8(6);
  const offset = major === 1 ? 10 : 12;
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const header = new TextDecoder().decode(new Uint8Array(buffer, offset, headerLen));
  const shape = header.match(/\(([^)]*)\)/)[1].split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  return { shape, data: new Float32Array(buffer.slice(offset + headerLen)) };
}

const scales = {
  hot: (t) => [255 * Math.min(1, 3 * t), 255 * Math.min(1, Math.max(0, 3 * t - 1)), 255 * Math.max(0, 3 * t - 2)],
  diverging: (t) => (t < 0.5 ? [255 * 2 * t, 255 * 2 * t, 255] : [255, 255 * 2 * (1 - t), 255 * 2 * (1 - t)]),
  gray: (t) => [255 * t, 255 * t, 255 * t],
};

async function addOverlay(box, npyUrl, input, run) {
  const div = document.createElement("div");
  div.className = "overlay2d";
  div.innerHTML = `<canvas></canvas><div class="row">
    <label>opacity <input type="range" class="opacity" min="0" max="1" step="0.05" value="0.6"></label>
    <label>colour scale <select class="scale"><option value="hot">hot</option><option value="diverging">diverging</option><option value="gray">gray</option></select></label></div>`;
  box.append(div);
  const [buffer, image] = await Promise.all([
    fetch(npyUrl).then((r) => r.arrayBuffer()),
    new Promise((ok, fail) => { const i = new Image(); i.onload = () => ok(i); i.onerror = fail; i.src = rawUrl(inputPath(input)); }),
  ]);
  const { shape, data } = parseNpy(buffer);
  if (shape.length < 3) return div.remove(); // a metric's scores, one per example: no map
  const [h, w] = shape.slice(-2);
  const channels = data.length / (h * w);
  const map = new Float32Array(h * w);
  for (let c = 0; c < channels; c++) for (let p = 0; p < h * w; p++) map[p] += data[c * h * w + p];
  const canvas = div.querySelector("canvas");
  canvas.width = w; canvas.height = h;
  canvas.style.width = `${Math.max(256, w * 2)}px`;
  const draw = () => {
    const ctx = canvas.getContext("2d");
    ctx.globalAlpha = 1;
    ctx.drawImage(image, 0, 0, w, h);
    const scale = scales[div.querySelector(".scale").value];
    const diverging = div.querySelector(".scale").value === "diverging";
    const max = map.reduce((m, v) => Math.max(m, Math.abs(v)), 0) || 1;
    const pixels = ctx.createImageData(w, h);
    for (let p = 0; p < h * w; p++) {
      const t = diverging ? 0.5 + map[p] / (2 * max) : Math.abs(map[p]) / max;
      const [r, g, b] = scale(t);
      pixels.data.set([r, g, b, 255], 4 * p);
    }
    const layer = document.createElement("canvas");
    layer.width = w; layer.height = h;
    layer.getContext("2d").putImageData(pixels, 0, 0);
    ctx.globalAlpha = Number(div.querySelector(".opacity").value);
    ctx.drawImage(layer, 0, 0);
    ctx.globalAlpha = 1;
  };
  div.querySelector(".opacity").oninput = draw;
  div.querySelector(".scale").onchange = draw;
  draw();
  div.dataset.drawn = "true";
}

function addVolumeButton(box, niiUrl, input, run) {
  const button = document.createElement("button");
  button.textContent = "View in 3D";
  button.className = "view3d";
  button.onclick = () => { button.remove(); openVolume(box, niiUrl, input); };
  box.append(button);
}

export async function openVolume(box, niiUrl, input) {
  const div = document.createElement("div");
  div.innerHTML = `<div class="niivue"><canvas></canvas></div><div class="row">
    <label>opacity <input type="range" class="opacity" min="0" max="1" step="0.05" value="0.6"></label>
    <label>colour map <select class="colormap"><option value="warm">warm</option><option value="hot">hot</option><option value="viridis">viridis</option><option value="redyell">redyell</option></select></label>
    <label>threshold <input type="range" class="threshold" min="0" max="1" step="0.01" value="0.1"></label></div>
    <div class="row"><label>i <input type="range" class="slice" data-axis="0" min="0" max="1" step="0.01" value="0.5"></label>
    <label>j <input type="range" class="slice" data-axis="1" min="0" max="1" step="0.01" value="0.5"></label>
    <label>k <input type="range" class="slice" data-axis="2" min="0" max="1" step="0.01" value="0.5"></label></div>
    <div class="volume-state"></div>`;
  box.append(div);
  const nv = new Niivue({ show3Dcrosshair: true, backColor: [0, 0, 0, 1] });
  await nv.attachToCanvas(div.querySelector(".niivue canvas"));
  nv.setSliceType(nv.sliceTypeMultiplanar);
  const name = (u) => u.split("/").pop().split("?")[0];
  await nv.loadVolumes([
    { url: rawUrl(input), name: name(input) },
    { url: niiUrl, name: name(niiUrl), colormap: "warm", opacity: 0.6 },
  ]);
  const map = nv.volumes[1];
  const range = map.robust_max || map.cal_max || 1;
  const update = () => {
    map.opacity = Number(div.querySelector(".opacity").value);
    map.colormap = div.querySelector(".colormap").value;
    map.cal_min = Number(div.querySelector(".threshold").value) * range;
    map.cal_max = range;
    nv.updateGLVolume();
  };
  div.querySelectorAll(".opacity,.colormap,.threshold").forEach((e) => (e.oninput = update));
  div.querySelectorAll(".slice").forEach((e) => (e.oninput = () => {
    const pos = [...nv.scene.crosshairPos];
    pos[Number(e.dataset.axis)] = Number(e.value);
    nv.scene.crosshairPos = pos;
    nv.drawScene();
  }));
  update();
  div.querySelector(".volume-state").textContent = `loaded ${nv.volumes.length} volumes`;
  box.dataset.volume = "loaded";
}
