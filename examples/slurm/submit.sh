#!/bin/bash
# Submits an esegeta run as a Slurm job array of N shards, then `esegeta merge` once every
# task has ended well (afterok):  examples/slurm/submit.sh CONFIG N [OUTPUT_FOLDER]
# OUTPUT_FOLDER is the config's output.folder (default: out beside the config).
set -euo pipefail
CONFIG="$(realpath "$1")"
N="$2"
FOLDER="${3:-$(dirname "$CONFIG")/out}"
ESEGETA="${ESEGETA:-$(command -v esegeta)}"
HERE="$(dirname "$(realpath "$0")")"
ARRAY=$(sbatch --parsable --array=0-$((N - 1)) --export=ALL,CONFIG="$CONFIG",ESEGETA="$ESEGETA" \
    "$HERE/esegeta-array.sbatch")
MERGE=$(sbatch --parsable --dependency=afterok:"$ARRAY" --job-name=esegeta-merge \
    --output=esegeta-merge-%j.log --wrap "\"$ESEGETA\" merge \"$FOLDER\"")
echo "array $ARRAY ($N shards), merge $MERGE"
