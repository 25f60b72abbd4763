// A list of config entries edited as rows of fields (the inputs, the models), added and
// removed on the page. Row 0's fields keep the plain ids (`input-path`), row i's end in `-i`;
// each field's data-path is its config path, so that the server's errors land at it.
const $ = (id) => document.getElementById(id);

// A field: { key, stem, label, placeholder, browse (a file), options ([[value, text]]: a
// select; "" leaves the key out), number (one number), numbers (comma-separated) }.
function field(spec, i, path) {
  const wrap = document.createElement("label");
  wrap.textContent = i === 0 ? spec.label : `${spec.label} ${i + 1}`;
  const input = document.createElement(spec.options ? "select" : "input");
  input.id = i === 0 ? spec.stem : `${spec.stem}-${i}`;
  input.dataset.path = path(i, spec.key);
  for (const [value, text] of spec.options || []) input.append(new Option(text, value));
  if (spec.number) Object.assign(input, { type: "number", min: 0 });
  if (spec.placeholder) input.placeholder = spec.placeholder;
  const row = document.createElement("span");
  row.className = "row";
  row.append(input);
  if (spec.browse) {
    const button = document.createElement("button");
    button.className = "browse";
    button.dataset.for = input.id;
    button.textContent = "Browse…";
    row.append(button);
  }
  wrap.append(row);
  return wrap;
}

const shown = (spec, value) =>
  value === undefined || value === null ? "" : spec.numbers ? value.join(",") : String(value);

function parsed(spec, text) {
  if (text === "") return undefined;
  if (spec.number) return Number(text);
  if (spec.numbers) return text.split(",").map((t) => t.trim()).filter(Boolean).map(Number);
  return text;
}

// Rows in the element `box` (id), with an add button `add` (id); `path(i, key, count)` is a
// field's config path; `noun` names a row ("input").
export function rowList({ box, add, fields, path, noun }) {
  let changed = () => {};
  const count = () => document.querySelectorAll(`#${box} > .config-row`).length;
  const id = (spec, i) => (i === 0 ? spec.stem : `${spec.stem}-${i}`);

  // The rows as config entries, each over `kept[i]` (what a loaded entry holds beyond them).
  function read(kept = []) {
    return Array.from({ length: count() }, (_, i) => {
      const entry = { ...(kept[i] || {}) };
      for (const spec of fields) {
        const value = parsed(spec, $(id(spec, i)).value.trim());
        if (value === undefined) delete entry[spec.key];
        else entry[spec.key] = value;
      }
      return entry;
    });
  }

  // Shows `entries` as rows (one empty row for none); `onChange` runs after an add or remove.
  function show(entries, onChange = changed) {
    changed = onChange;
    const list = entries.length ? entries : [{}];
    const element = $(box);
    element.innerHTML = "";
    list.forEach((entry, i) => {
      const div = document.createElement("div");
      div.className = "grid config-row";
      div.dataset.index = i;
      for (const spec of fields) div.append(field(spec, i, (j, key) => path(j, key, list.length)));
      if (list.length > 1) {
        const remove = document.createElement("button");
        remove.className = "row-remove";
        remove.textContent = `Remove ${noun} ${i + 1}`;
        remove.onclick = () => {
          show(read(entries).filter((_, j) => j !== i));
          changed();
        };
        div.append(remove);
      }
      element.append(div);
      for (const spec of fields) {
        const value = shown(spec, entry[spec.key]);
        const input = $(id(spec, i));
        input.value = spec.options && !spec.options.some(([v]) => v === value) ? spec.options[0][0] : value;
      }
    });
    $(add).onclick = () => {
      show([...read(entries), {}]);
      changed();
    };
  }

  return { read, show };
}
