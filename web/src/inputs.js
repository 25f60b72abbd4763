// The inputs of screen 1: one row per entry of the config's `inputs` (path, targets, ground
// truth, region), added and removed on the page. Row 0's fields keep the plain ids
// (input-path, ...), row i's end in -i; every field's data-path is its config path, so that
// the server's errors land at it.
const $ = (id) => document.getElementById(id);

const FIELDS = [
  // key, id stem, label, placeholder, browsable
  ["path", "input-path", "Input", "data/scan.nii.gz or data/*.png", true],
  ["targets", "input-targets", "Targets (comma-separated)", "1", false],
  ["ground_truth", "input-truth", "Ground truth (optional)", "data/{stem}_mask.nii.gz", true],
  ["mask", "input-mask", "Region for the mask wrapper", "", true],
];

const id = (stem, i) => (i === 0 ? stem : `${stem}-${i}`);

function field([key, stem, label, placeholder, browsable], i) {
  const wrap = document.createElement("label");
  wrap.textContent = i === 0 ? label : `${label} ${i + 1}`;
  const input = document.createElement("input");
  input.id = id(stem, i);
  input.dataset.path = `inputs[${i}].${key}`;
  input.placeholder = placeholder;
  const row = document.createElement("span");
  row.className = "row";
  row.append(input);
  if (browsable) {
    const button = document.createElement("button");
    button.className = "browse";
    button.dataset.for = input.id;
    button.textContent = "Browse…";
    row.append(button);
  }
  wrap.append(row);
  return wrap;
}

function row(i, count, changed) {
  const div = document.createElement("div");
  div.className = "grid input-row";
  div.dataset.index = i;
  for (const f of FIELDS) div.append(field(f, i));
  if (count > 1) {
    const remove = document.createElement("button");
    remove.className = "input-remove";
    remove.textContent = `Remove input ${i + 1}`;
    remove.onclick = () => {
      const kept = readInputs().filter((_, j) => j !== i);
      showInputs(kept, changed);
      changed();
    };
    div.append(remove);
  }
  return div;
}

// Shows `inputs` (the config's list) as rows; `changed` runs after a row is added or removed.
export function showInputs(inputs, changed) {
  const list = inputs.length ? inputs : [{}];
  const box = $("inputs");
  box.innerHTML = "";
  list.forEach((_, i) => box.append(row(i, list.length, changed)));
  list.forEach((input, i) => {
    $(id("input-path", i)).value = input.path ?? "";
    $(id("input-targets", i)).value = (input.targets || []).join(",");
    $(id("input-truth", i)).value = input.ground_truth ?? "";
    $(id("input-mask", i)).value = input.mask ?? "";
  });
  $("input-add").onclick = () => {
    showInputs([...readInputs(), {}], changed);
    changed();
  };
}

// The rows as the config's `inputs`, each over `kept[i]` (what a loaded config's input holds
// beyond these fields).
export function readInputs(kept = []) {
  const count = document.querySelectorAll("#inputs .input-row").length;
  return Array.from({ length: count }, (_, i) => {
    const text = (stem) => $(id(stem, i)).value.trim() || undefined;
    const input = { ...(kept[i] || {}) };
    const targets = text("input-targets");
    const values = {
      path: text("input-path"),
      targets: targets ? targets.split(",").map((t) => t.trim()).filter(Boolean).map(Number) : undefined,
      ground_truth: text("input-truth"),
      mask: text("input-mask"),
    };
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) delete input[key];
      else input[key] = value;
    }
    return input;
  });
}
