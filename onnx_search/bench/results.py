"""Where bench results go: ``bench/results/<machine slug>/NAME.json``, tracked in git, each with its provenance.

Every bench writes through ``write_result``, which adds the hardware record (``provenance.record()``: the machine,
library versions, git commit and command line), so no figure reaches the docs without the CPU it was measured on.
Scratch files (photos, converted models, stores) go under ``WORK``, which git ignores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import OnnxSearchError
from ..provenance import record, slug

RESULTS = Path("bench/results")
WORK = Path("bench/work")
# the keys write_result adds: a committed result without any of them has no machine named
RECORD_KEYS = ("machine", "versions", "commit", "command")


def default_out() -> Path:
    """This machine's results folder: ``bench/results/<slug>``."""
    return RESULTS / slug()


def write_result(out_dir: Path, name: str, data: dict, *, hardware_added_later: bool = False) -> Path:
    """Write ``data`` as ``out_dir/name`` (indented JSON) with this process's provenance record; returns the path.

    ``hardware_added_later``: the figures were measured before the record was taken (same machine, re-wrapped)."""
    if not name.endswith(".json") or "/" in name:
        raise OnnxSearchError(
            f"bench result name {name!r}: give a file name ending .json (it is written under {out_dir})"
        )
    out = {k: v for k, v in data.items() if k not in RECORD_KEYS} | record()
    if hardware_added_later:
        out["hardware_added_later"] = True
    elif hasattr(os, "getloadavg"):  # a busy machine's speed figures read as rough ratios: say how busy it was
        out["load_average_1_5_15_min"] = [round(x, 2) for x in os.getloadavg()]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(json.dumps(out, indent=1) + "\n")
    return path
