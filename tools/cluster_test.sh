#!/bin/bash
# `make cluster-test`: esegeta's shards on a real Slurm cluster, a single node on localhost.
#
# Starts munge and Slurm (slurmctld, slurmd; as root, state in a temporary folder, ports 6917
# and 6918) unless a cluster answers already, then:
#   1. a single-process `esegeta run` of a small study (the reference);
#   2. the same study as a job array of 4 shards through examples/slurm/submit.sh, the merge
#      job after it; the merged manifest and every map must equal the reference, job by job;
#   3. again with one array task cancelled while it runs and then submitted again alone:
#      nothing lost, nothing duplicated.
# Needs Debian's slurm-wlm and munge (apt-get install slurm-wlm munge) and a release build.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ESEGETA="$ROOT/target/release/esegeta"
WORK="$(mktemp -d /tmp/esegeta-cluster-XXXX)"
export SLURM_CONF="$WORK/slurm.conf"
NODE="$(hostname)"

start_cluster() {
    mkdir -p "$WORK/spool" "$WORK/state" /run/munge
    chown munge:munge /run/munge 2>/dev/null || true
    pgrep -x munged >/dev/null || munged --force
    cat > "$SLURM_CONF" <<CONF
ClusterName=esegeta-test
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmdSpoolDir=$WORK/spool
StateSaveLocation=$WORK/state
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
SlurmctldPort=6917
SlurmdPort=6918
NodeName=$NODE CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=test Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
    slurmctld
    slurmd
    STARTED=1
    for _ in $(seq 30); do
        sinfo -h -o %T 2>/dev/null | grep -q idle && return 0
        sleep 1
    done
    echo "cluster-test: the Slurm node did not come up; see $WORK/slurm*.log" >&2
    exit 1
}

STARTED=""
stop_cluster() {
    if [ -n "$STARTED" ]; then
        scontrol shutdown >/dev/null 2>&1 || true
        sleep 1
    fi
    rm -rf "$WORK"
}
trap stop_cluster EXIT

# A study of 3 inputs x 2 targets x 4 methods = 24 jobs, most of them slow enough (about 1.5 s)
# for a task to be cancelled in the middle of its share.
study() {
    local dir="$1"
    mkdir -p "$dir/inputs"
    for i in 0 1 2; do cp "$ROOT/tests/fixtures/onnx/classifier2d_x1.npy" "$dir/inputs/x$i.npy"; done
    cat > "$dir/study.json" <<JSON
{"model": {"path": "$ROOT/tests/fixtures/onnx/classifier2d.onnx"},
 "inputs": [{"path": "inputs/*.npy", "targets": [0, 1]}],
 "methods": [{"id": "captum.saliency"},
             {"id": "torchray.rise", "name": "rise_a", "params": {"num_masks": 200000, "num_cells": 2, "seed": 1}},
             {"id": "torchray.rise", "name": "rise_b", "params": {"num_masks": 200000, "num_cells": 3, "seed": 2}},
             {"id": "torchray.rise", "name": "rise_c", "params": {"num_masks": 200000, "num_cells": 4, "seed": 3}}],
 "execution": {"workers_per_device": 1},
 "output": {"folder": "out", "formats": ["npy"]}}
JSON
}

wait_for() { # job ids: wait until none is pending or running
    while squeue -h -j "$1" 2>/dev/null | grep -q .; do sleep 1; done
}

compare() { # reference folder, merged folder
    python3 - "$1" "$2" <<'PY'
import json, sys, filecmp
from pathlib import Path
ref, got = (json.loads((Path(a) / "out" / "results.json").read_text()) for a in sys.argv[1:])
ids = [j["id"] for j in got["jobs"]]
assert len(ids) == len(set(ids)), f"duplicated jobs: {len(ids) - len(set(ids))}"
missing = {j["id"] for j in ref["jobs"]} - set(ids)
assert not missing, f"lost jobs: {sorted(missing)}"
by_id = {j["id"]: j for j in got["jobs"]}
for j in ref["jobs"]:
    g = by_id[j["id"]]
    assert g["status"] == "done", (j["id"], g["status"], g.get("error"))
    for a, b in zip(j["files"], g["files"]):
        assert filecmp.cmp(a, b, shallow=False), f"{j['id']}: {a} and {b} differ"
print(f"cluster-test: {len(ids)} jobs, 0 lost, 0 duplicated, every map equal to the single run's")
PY
}

sinfo -h >/dev/null 2>&1 || start_cluster
study "$WORK/reference"
(cd "$WORK/reference" && "$ESEGETA" run study.json >/dev/null)

study "$WORK/array"
cd "$WORK/array"
ESEGETA="$ESEGETA" "$ROOT/examples/slurm/submit.sh" study.json 4 "$WORK/array/out" | tee submitted
MERGE=$(awk '{print $NF}' submitted)
wait_for "$MERGE"
compare "$WORK/reference" "$WORK/array"

study "$WORK/killed"
cd "$WORK/killed"
ARRAY=$(sbatch --parsable --array=0-3 --export=ALL,CONFIG="$WORK/killed/study.json",ESEGETA="$ESEGETA" \
    "$ROOT/examples/slurm/esegeta-array.sbatch")
# Cancel task 1 once it has finished some of its jobs and is in the middle of the others.
shard_done() {
    python3 -c "import json, sys
try: print(sum(j['status'] == 'done' for j in json.load(open('out/results.shard-1-of-4.json'))['jobs']))
except Exception: print(0)"
}
for _ in $(seq 240); do
    [ "$(shard_done)" -ge 1 ] && break
    sleep 0.25
done
scancel "${ARRAY}_1"
wait_for "$ARRAY"
done_before=$(shard_done)
echo "cluster-test: task 1 cancelled with $done_before of its 6 jobs done; submitting it again"
if [ "$done_before" -ge 6 ]; then
    echo "cluster-test: task 1 finished before it could be cancelled; nothing was tested" >&2
    exit 1
fi
AGAIN=$(sbatch --parsable --array=1 \
    --export=ALL,CONFIG="$WORK/killed/study.json",ESEGETA="$ESEGETA",SHARDS=4 \
    "$ROOT/examples/slurm/esegeta-array.sbatch")
wait_for "$AGAIN"
"$ESEGETA" merge out >/dev/null
compare "$WORK/reference" "$WORK/killed"
