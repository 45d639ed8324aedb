"""Record what a ``make test`` run cost on this machine: ``bench/results/<machine>/make_test.json``.

``make test`` writes its process tree's peak memory and its seconds to ``.cache/test-peak-rss.json``
(``tests/peak_rss.py``); this adds pytest's own closing line from the run's log and, where the run started from a
fresh clone, the seconds of the whole ``bash .ci/run`` (the virtual environment's install included), then writes the
result with the hardware record. It is a separate step, never part of ``make test``: the docs' benchmark page is
generated from the committed results, and a test run that rewrote one would leave that page stale.

    python -m onnx_search.bench.test_run --peak .cache/test-peak-rss.json --log test.log [--ci-seconds N]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from .results import default_out, write_result

# pytest's closing line: "===== 645 passed, 2 deselected, 25 warnings in 790.10s (0:13:10) ====="
CLOSING = re.compile(r"^=+ (?P<counts>.*?) in (?P<seconds>[0-9.]+)s(?: \([0-9:]+\))? =+$")


def pytest_closing(log: str) -> dict:
    """The last pytest closing line of a log: its counts (``{"passed": 645, ...}``) and seconds; {} when none."""
    found = [m for line in log.splitlines() if (m := CLOSING.match(line.strip()))]
    if not found:
        return {}
    last = found[-1]
    counts = {}
    for part in last["counts"].split(", "):
        n, _, what = part.partition(" ")
        if n.isdigit():
            counts[what] = int(n)
    return {"counts": counts, "seconds": float(last["seconds"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peak", type=Path, default=Path(".cache/test-peak-rss.json"), help="peak_rss.py's JSON file")
    ap.add_argument("--log", type=Path, required=True, help="the output of the make test run")
    ap.add_argument("--ci-seconds", type=float, help="seconds of the whole bash .ci/run, install included")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default: this machine's)")
    args = ap.parse_args(argv)
    peak = json.loads(args.peak.read_text())
    data = {
        "what": "One `make test` run: lint, the docs checks, the Milvus server and Ray tests, then pytest; its "
        "seconds and the peak resident memory of its whole process tree (sampled every "
        f"{peak.get('sample_every_s')} s).",
        "make_test_seconds": peak["seconds"],
        "peak_tree_rss_mb": peak["peak_tree_rss_mb"],
        "peak_process_mb": peak["peak_process_mb"],
        "exit_status": peak["exit_status"],
        "pytest": pytest_closing(args.log.read_text(errors="replace")),
    }
    if args.ci_seconds is not None:
        data["ci_run_seconds_fresh_clone"] = args.ci_seconds
    path = write_result(args.out or default_out(), "make_test.json", data)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
