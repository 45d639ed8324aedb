"""docs/benchmarks.md, generated from the committed bench results (``bench/results/<machine>/NAME.json``).

Every figure on the page is a value of a result file, printed as JSON prints it; nothing is retyped or rounded.
Each benchmark gets one table with a column per machine that measured it, so two machines that disagree stand side
by side, each labelled by its CPU model, core count and ISA flags. The output depends only on the files: the same
files give the same page on any machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from .results import RECORD_KEYS, RESULTS

ROOT = Path(__file__).resolve().parents[2]
# keys shown as text above a benchmark's table rather than as rows of it
PROSE_KEYS = ("what", "method")
# keys that are inputs or bulky text, not figures: left in the JSON file
SKIP_KEYS = {"config", "hardware_added_later", *RECORD_KEYS, *PROSE_KEYS}
MAX_ROWS = 300  # per benchmark; the rest stay in the JSON file (the page says how many)
MAX_TEXT = 80  # longer strings are prose, not figures
MAX_LIST = 8  # longer lists of scalars are series, left in the file


def load_results(root: Path = ROOT) -> dict[str, dict[str, dict]]:
    """``{benchmark name: {machine slug: result}}`` for every ``bench/results/*/*.json`` under ``root``."""
    out: dict[str, dict[str, dict]] = {}
    for path in sorted((root / RESULTS).glob("*/*.json")):
        out.setdefault(path.stem, {})[path.parent.name] = json.loads(path.read_text())
    return {name: dict(sorted(by.items())) for name, by in sorted(out.items())}


def cell(value) -> str:
    """A figure as JSON writes it (so the page shows exactly the file's value), safe inside a Markdown table."""
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value)
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= MAX_TEXT)


def figures(data: dict) -> dict[str, object]:
    """The result's figures, flattened: ``{"a.b.0.c": value}`` for every scalar leaf (and short list of scalars),
    in the file's order, without the provenance record, the prose and the inputs."""
    out: dict[str, object] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if not prefix and k in SKIP_KEYS:
                    continue
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and value and all(_is_scalar(v) for v in value):
            if len(value) <= MAX_LIST:
                out[prefix] = value
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}.{i}", v)
        elif _is_scalar(value):
            out[prefix] = value

    walk("", data)
    return out


def row_lists(data: dict) -> dict[str, list[dict]]:
    """Top-level lists of records (a simulation's rows, say): each is shown as a table of its own, a row per
    record and a column per key, rather than flattened into ``rows.0.key`` figures."""
    return {
        k: v
        for k, v in data.items()
        if k not in SKIP_KEYS and isinstance(v, list) and v and all(isinstance(r, dict) for r in v)
    }


def _rows_table(records: list[dict]) -> list[str]:
    """Records with the same columns share a table (a row each), in the order they first appear; a record's own
    nested figures are ``a.b`` columns."""
    groups: dict[tuple, list[dict]] = {}
    for r in map(figures, records):
        groups.setdefault(tuple(r), []).append(r)
    out: list[str] = []
    for cols, rows in groups.items():
        out += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        out += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows] + [""]
    return out[:-1]


def machine_label(data: dict) -> str:
    """``AMD EPYC, 2 cores, AVX2, AVX-512, VNNI (AVX512_VNNI)`` (with the GPU where there is one)."""
    m = data.get("machine") or {}
    cores = m.get("cpus_usable") or m.get("cpus")
    parts = [m.get("cpu_model") or "CPU model not recorded", f"{cores} cores" if cores else "cores not recorded"]
    parts.append(m.get("isa_summary") or "ISA flags not recorded")
    parts += [g.get("name", "GPU") for g in m.get("gpus") or []]
    label = ", ".join(str(p) for p in parts)
    if isinstance(data.get("emulated"), str):  # the CPU that ran is the emulator's: the record's and the folder's
        label += f" (emulated: `{data['emulated']}`)"
    return label


def _machines_table(results: dict[str, dict[str, dict]]) -> str:
    seen: dict[str, dict] = {}
    for by in results.values():
        for slug, data in by.items():
            seen.setdefault(slug, data)
    rows = ["| machine | CPU | cores | ISA flags | memory MB | GPU | onnxruntime |", "|---|---|---|---|---|---|---|"]
    for slug in sorted(seen):
        m = seen[slug].get("machine") or {}
        gpus = ", ".join(g.get("name", "GPU") for g in m.get("gpus") or []) or "none"
        emulated = {data.get("emulated") for by in results.values() if slug in by for data in [by[slug]]}
        cpu = m.get("cpu_model")
        if len(emulated) == 1 and isinstance(next(iter(emulated)), str):  # only emulated results: say so
            cpu = f"{cpu} (emulated: {next(iter(emulated))})"
        cells = [cpu, m.get("cpus_usable") or m.get("cpus"), m.get("isa_summary"), m.get("memory_mb")]
        cells += [gpus, m.get("onnxruntime")]
        rows.append(f"| `{slug}` | " + " | ".join("–" if c is None else cell(c) for c in cells) + " |")
    return "\n".join(rows)


def benchmark_table(name: str, by_machine: dict[str, dict]) -> str:
    """One benchmark: what it measures, where each figure comes from, and one column of figures per machine."""
    slugs = list(by_machine)
    out = [f"## {name}", ""]
    first = by_machine[slugs[0]]
    for key in PROSE_KEYS:
        if isinstance(first.get(key), str):
            out += [first[key].strip(), ""]
    for slug, data in by_machine.items():
        later = " (hardware record added after the measurement, on the same machine)" * bool(
            data.get("hardware_added_later")
        )
        out.append(f"- `{slug}`: {machine_label(data)}; file `{RESULTS / slug / (name + '.json')}`{later}")
    out.append("")
    tables = {slug: row_lists(data) for slug, data in by_machine.items()}
    for slug, lists in tables.items():
        for key, records in lists.items():
            out += [f"`{key}` on `{slug}`:", "", *_rows_table(records), ""]
    per = {slug: figures({k: v for k, v in data.items() if k not in tables[slug]}) for slug, data in by_machine.items()}
    keys = list(dict.fromkeys(k for f in per.values() for k in f))
    if not keys:
        return "\n".join(out) + "\n"
    out.append("| figure | " + " | ".join(f"`{s}`" for s in slugs) + " |")
    out.append("|---|" + "---|" * len(slugs))
    for key in keys[:MAX_ROWS]:
        vals = [cell(per[s][key]) if key in per[s] else "–" for s in slugs]
        out.append(f"| `{key}` | " + " | ".join(vals) + " |")
    if len(keys) > MAX_ROWS:
        out += ["", f"{len(keys) - MAX_ROWS} more figures are in the JSON file."]
    return "\n".join(out) + "\n"


def benchmark_markdown(root: Path = ROOT) -> str:
    """The whole docs/benchmarks.md page."""
    results = load_results(root)
    head = [
        "<!-- generated by `python -m onnx_search.cli.docsgen` from bench/results/*/*.json; do not edit by hand -->",
        "",
        "# Benchmarks",
        "",
        "Every figure below is a value from a result file committed under `bench/results/<machine>/`, written by a",
        "`make bench-*` target on that machine together with its hardware record (CPU model, cores, ISA flags,",
        "memory, GPU, library versions, commit and command). Speed and INT8 accuracy depend on the CPU's instruction",
        "sets (AVX2, AVX-512, VNNI, AMX; on ARM dot-product and i8mm), so each column is labelled with its machine and",
        "figures from different machines are shown side by side, never merged.",
        "",
        "To add your machine: run the `make bench-*` targets and commit `bench/results/<machine>/`; then",
        "`python -m onnx_search.cli.docsgen` regenerates this page.",
        "",
    ]
    if not results:
        return "\n".join(head + ["No bench results are committed yet.", ""])
    head += ["## Machines", "", _machines_table(results), ""]
    return "\n".join(head) + "\n" + "\n".join(benchmark_table(n, by) for n, by in results.items())
