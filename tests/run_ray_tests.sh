#!/usr/bin/env bash
# Runs the tests marked `ray` inside a loopback-only network namespace: a Ray cluster opens several ports, and
# nothing it starts may be reachable from outside this machine. `unshare -n bash tests/run_ray_tests.sh PYTHON`.
set -u
PY=${1:-.venv/bin/python}
if [ "$(ip -o link show | grep -vc ': lo:')" != 0 ]; then
  echo "refusing to start Ray: this namespace has interfaces other than lo (run it under unshare -n)" >&2
  exit 2
fi
ip link set lo up
RAY_USAGE_STATS_ENABLED=0 "$PY" -m pytest -m ray -p no:cacheprovider "${@:2}"
