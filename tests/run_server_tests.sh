#!/usr/bin/env bash
# Runs the tests marked `server` against a real standalone Milvus (PyPI package `milvus`, 2.3.5).
# That server listens on every interface, so this script must run inside a loopback-only network
# namespace: `unshare -n bash tests/run_server_tests.sh PYTHON` (the Makefile's test-server does this).
set -u
PY=${1:-.venv/bin/python}
. "$(dirname "$0")/loopback_only.sh"
loopback_only Milvus
data=$(mktemp -d /tmp/milvus-server-XXXXXX)
"$(dirname "$PY")/milvus-server" --data "$data" >"$data/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 120); do (echo >/dev/tcp/127.0.0.1/19530) 2>/dev/null && break; sleep 1; done
if ! (echo >/dev/tcp/127.0.0.1/19530) 2>/dev/null; then
  echo "Milvus server did not start; last log lines:" >&2; tail -20 "$data/server.log" >&2; exit 1
fi
MILVUS_URI=http://127.0.0.1:19530 "$PY" -m pytest -m server -p no:cacheprovider "${@:2}"
