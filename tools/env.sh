# Sourced by the Makefile: makes sure the torch virtualenv exists, then points the build at it.
#
# tch 0.26 builds against libtorch 2.13.0, which `pip install torch==2.13.0` brings. The
# virtualenv lives outside the clone (override with ESEGETA_VENV) so that every clone and CI run
# on a machine reuses it instead of downloading ~4.5 GB again.
ESEGETA_VENV="${ESEGETA_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/esegeta/venv}"
if ! "$ESEGETA_VENV/bin/python" -c 'import sys, torch; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
    echo "esegeta: installing torch==2.13.0 into $ESEGETA_VENV (once per machine, ~4.5 GB)" >&2
    python3 -m venv "$ESEGETA_VENV" || return 1
    "$ESEGETA_VENV/bin/pip" install --quiet --upgrade pip || return 1
    "$ESEGETA_VENV/bin/pip" install --quiet torch==2.13.0 numpy || return 1
fi
export VIRTUAL_ENV="$ESEGETA_VENV"
export PATH="$ESEGETA_VENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
