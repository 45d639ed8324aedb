"""Run a command and print its whole process tree's peak memory: ``python tests/peak_rss.py [--json F] LABEL CMD...``.

``make test`` runs pytest under it, so CI prints one line such as ``make test peak RSS: 4,210 MB``. The tree (the
command and every process it starts, children of children included) is sampled every ``--every`` seconds from
/proc: the figure is the largest sum of the processes' resident memory seen at one moment. Beside it, the largest
single process's own peak (VmHWM, which the kernel keeps, so no spike between two samples is missed). With
``--json FILE`` both figures are written there too. The command's exit status is passed through.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path


def _status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of one process in kB ({} when it is gone or unreadable)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line[:5]] = int(line.split()[1])
    except (OSError, ValueError):
        return {}
    return out


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process visible in /proc."""
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(root: int) -> list[int]:
    """``root`` and all its descendants alive now."""
    kids, todo, seen = _children(), [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(kids.get(pid, []))
    return seen


class TreeSampler(threading.Thread):
    """Samples the process tree of ``root`` until ``stop`` is set; keeps the peaks in MB."""

    def __init__(self, root: int, every: float) -> None:
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.stop = threading.Event()
        self.tree_mb = 0.0  # largest sum of VmRSS over the tree at one sample
        self.process_mb = 0.0  # largest VmHWM of any one process in it
        self.processes = 0  # the most processes alive at one sample

    def sample(self) -> None:
        pids = tree(self.root)
        stats = [s for s in map(_status_kb, pids) if s]
        self.tree_mb = max(self.tree_mb, sum(s.get("VmRSS", 0) for s in stats) / 1024)
        self.process_mb = max([self.process_mb] + [s.get("VmHWM", 0) / 1024 for s in stats])
        self.processes = max(self.processes, len(stats))

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.every)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("label", help="what the printed line calls the command, e.g. 'make test'")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    p.add_argument("--every", type=float, default=0.5, help="seconds between two samples of the tree")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    a = p.parse_args(argv)
    if not a.command:
        p.error("give the command to run after the label")
    t0 = time.monotonic()
    proc = subprocess.Popen(a.command)
    sampler = TreeSampler(proc.pid, a.every)
    sampler.start()
    rc = proc.wait()
    sampler.stop.set()
    sampler.join()
    # the kernel's own record of the largest waited-for descendant catches a process that lived between two samples
    sampler.process_mb = max(sampler.process_mb, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    peak = {"label": a.label, "peak_tree_rss_mb": round(sampler.tree_mb), "peak_process_mb": round(sampler.process_mb),
            "max_processes": sampler.processes, "sample_every_s": a.every, "seconds": round(time.monotonic() - t0),
            "exit_status": rc}  # fmt: skip
    print(f"{a.label} peak RSS: {peak['peak_tree_rss_mb']:,} MB (whole process tree, sampled every {a.every:g} s; "
          f"largest single process {peak['peak_process_mb']:,} MB)", flush=True)  # fmt: skip
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(peak, indent=2) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())


def per_test_memory(path: str, every: float = 0.2):
    """A pytest plugin (``ONNX_SEARCH_TEST_MEMORY=FILE pytest ...``, registered by conftest.py): for each test, the
    peak of the test process's tree (itself and the children it starts) over its setup, call and teardown, and the
    process's own resident memory before and after, one JSON line each, appended to FILE. It shows which tests need
    memory, and whether a test process keeps what a test loaded."""
    import pytest

    class PerTestMemory:
        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_protocol(self, item, nextitem):  # noqa: ARG002 - pytest's hook signature
            before = _status_kb(os.getpid()).get("VmRSS", 0) / 1024
            sampler = TreeSampler(os.getpid(), every)
            t0 = time.monotonic()
            sampler.start()
            try:
                return (yield)
            finally:
                sampler.stop.set()
                sampler.join()
                sampler.sample()
                after = _status_kb(os.getpid()).get("VmRSS", 0) / 1024
                row = {"test": item.nodeid, "seconds": round(time.monotonic() - t0, 2),
                       "peak_tree_mb": round(sampler.tree_mb), "rss_before_mb": round(before),
                       "rss_after_mb": round(after)}  # fmt: skip
                with open(path, "a") as f:
                    f.write(json.dumps(row) + "\n")

    return PerTestMemory()
