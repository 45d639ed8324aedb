#!/usr/bin/env bash
# Runs the tests marked `ray` inside a loopback-only network namespace: a Ray cluster opens several ports, and
# nothing it starts may be reachable from outside this machine. `unshare -n bash tests/run_ray_tests.sh PYTHON`.
set -u
PY=${1:-.venv/bin/python}
. "$(dirname "$0")/loopback_only.sh"
loopback_only Ray
RAY_USAGE_STATS_ENABLED=0 "$PY" -m pytest -m ray -p no:cacheprovider "${@:2}"
