// Screen 4, running: starts the run, follows its server-sent events (one row per job with
// its progress), cancels it; at the end, hands the run to the results.
import { api, post } from "./api.js";

const $ = (id) => document.getElementById(id);
let source = null;
let current = null;

function row(id) {
  let tr = document.querySelector(`#jobs tr[data-job="${CSS.escape(id)}"]`);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.job = id;
    tr.innerHTML = `<td></td><td><progress max="1" value="0"></progress></td><td class="job-status">queued</td>`;
    tr.firstChild.textContent = id;
    $("jobs").querySelector("tbody").append(tr);
  }
  return tr;
}

// Starts `config`; `done(id)` when it has ended. Returns the server's problems, if any.
export async function startRun(config, done) {
  const { status, body } = await post("/api/runs", config);
  if (status !== 201) return body.errors || [{ path: "", message: body.error }];
  follow(body.id, done);
  return [];
}

export function follow(id, done) {
  current = id;
  source?.close();
  $("jobs").querySelector("tbody").innerHTML = "";
  $("results").innerHTML = "";
  $("run-status").textContent = `run ${id}: queued`;
  $("run-cancel").disabled = false;
  source = new EventSource(`/api/runs/${id}/events`);
  const on = (name, f) => source.addEventListener(name, (e) => f(JSON.parse(e.data)));
  on("planned", (e) => e.jobs.forEach(row));
  on("run_started", () => { $("run-status").textContent = `run ${id}: running`; });
  on("job_started", (e) => { row(e.id).querySelector(".job-status").textContent = "running"; });
  on("progress", (e) => {
    const bar = row(e.id).querySelector("progress");
    bar.max = e.total; bar.value = e.done;
  });
  on("job_finished", (e) => {
    const tr = row(e.record.id);
    const bar = tr.querySelector("progress");
    bar.max = 1; bar.value = 1;
    const status = e.record.status === "done" ? "done" : `${e.record.status}: ${e.record.error || ""}`;
    tr.querySelector(".job-status").textContent = status;
    tr.classList.toggle("error", e.record.status !== "done");
  });
  on("run_finished", (e) => {
    source.close();
    for (const cell of document.querySelectorAll("#jobs .job-status")) {
      if (cell.textContent === "queued") cell.textContent = `not started (the run ${e.status === "cancelled" ? "was cancelled" : "ended"})`;
    }
    $("run-cancel").disabled = true;
    $("run-status").textContent = `run ${id}: ${e.status}${e.error ? ` (${e.error})` : ""}`;
    $("run-status").dataset.status = e.status;
    done?.(id);
  });
}

$("run-cancel").onclick = async () => {
  if (current) await api(`/api/runs/${current}`, { method: "DELETE" });
};
