"""Where a result came from: library versions and the machine, collected in one place for every manifest.

``machine()`` is the hardware record: CPU model, cores, the ISA flags that decide INT8 speed and accuracy, memory,
GPU, onnxruntime and its providers. It is the same dict on every call on one machine, so two results compare equal
on it exactly when they were measured on the same hardware. ``record()`` adds what differs between runs: library
versions, the git commit and the command line. ``slug()`` names the machine in folder names
(``bench/results/amd-epyc-2c-avx512-vnni``); ``python -m onnx_search.provenance --slug`` prints it.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from . import __version__

# distribution names, first installed wins (onnxruntime-gpu and onnxruntime ship the same module)
_PACKAGES = {
    "onnxruntime": ("onnxruntime-gpu", "onnxruntime"),
    "tf2onnx": ("tf2onnx",),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "keras": ("keras",),
    "onnx": ("onnx",),
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "pymilvus": ("pymilvus",),
    "milvus_lite": ("milvus-lite",),
    "redis_py": ("redis",),
    "numpy": ("numpy",),
    "pillow": ("Pillow", "pillow"),
}


def package_version(*names: str) -> str | None:
    """The installed version of the first of ``names`` that is installed, else None."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def library_versions() -> dict[str, str | None]:
    """Versions of onnx-search and every library that shapes a result (None: not installed)."""
    return {"onnx_search": __version__, "python": platform.python_version()} | {
        key: package_version(*names) for key, names in _PACKAGES.items()
    }


# ISA flags that decide INT8 speed and accuracy, as /proc/cpuinfo spells them ("flags" on x86, "Features" on ARM)
X86_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
ARM_FLAGS = ("asimd", "asimddp", "i8mm")
# ARM cores by (CPU implementer, CPU part): /proc/cpuinfo on ARM names no model
ARM_PARTS = {
    ("0x41", "0xd08"): "ARM Cortex-A72",
    ("0x41", "0xd0b"): "ARM Cortex-A76",
    ("0x41", "0xd0c"): "ARM Neoverse-N1",
    ("0x41", "0xd40"): "ARM Neoverse-V1",
    ("0x41", "0xd49"): "ARM Neoverse-N2",
    ("0x41", "0xd4f"): "ARM Neoverse-V2",
    ("0x41", "0xd8e"): "ARM Neoverse-N3",
    ("0x61", "0x022"): "Apple M1",
    ("0x61", "0x023"): "Apple M1",
    ("0xc0", "0xac3"): "Ampere-1",
}
_TIMEOUT_S = 5


def parse_cpuinfo(text: str) -> dict:
    """CPU model, architecture family and the ISA flags of ``X86_FLAGS``/``ARM_FLAGS`` present, from the text of
    /proc/cpuinfo (the first processor's block speaks for all)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    if "flags" in fields:
        present = set(fields["flags"].split())
        return {"cpu_model": fields.get("model name"), "family": "x86", "isa": [f for f in X86_FLAGS if f in present]}
    if "features" in fields or "cpu implementer" in fields:
        present = set(fields.get("features", "").split())
        imp, part = fields.get("cpu implementer", "?").lower(), fields.get("cpu part", "?").lower()
        model = fields.get("model name") or ARM_PARTS.get((imp, part)) or f"ARM implementer {imp} part {part}"
        return {"cpu_model": model, "family": "arm", "isa": [f for f in ARM_FLAGS if f in present]}
    return {"cpu_model": fields.get("model name"), "family": None, "isa": []}


def cpu_features() -> dict[str, bool]:
    """The x86 features this process's CPUID reports, from numpy's runtime dispatch ({} where it has none). Under
    an emulator (``qemu-x86_64 -cpu Haswell``) this is the emulated CPU; /proc/cpuinfo still shows the host's."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return {}
    return dict(__cpu_features__)


CPUID_FLAGS = {"avx2": "AVX2", "avx512f": "AVX512F", "avx512_vnni": "AVX512VNNI"}


def effective_isa(info: dict, features: dict[str, bool]) -> list[str]:
    """/proc/cpuinfo's ISA flags (``parse_cpuinfo``) corrected by CPUID (``cpu_features``): a flag
    CPUID denies is dropped, one it reports is added. When CPUID denies a flag the file shows, the file speaks of
    another CPU (an emulator's host), so the flags CPUID cannot see (AVX_VNNI, AMX) are dropped too."""
    isa = list(info.get("isa") or [])
    if info.get("family") != "x86" or not features:
        return isa
    seen = {flag: features.get(key) for flag, key in CPUID_FLAGS.items()}
    emulated = any(seen[f] is False and f in isa for f in seen)
    isa = [f for f in isa if seen.get(f) is not False and not (emulated and f not in seen)]
    return isa + [f for f, on in seen.items() if on and f not in isa]


def isa_summary(family: str | None, isa: list[str]) -> str:
    """The ISA flags as a reader wants them: ``AVX2, AVX-512, VNNI (AVX512_VNNI)`` or ``AVX2, no VNNI``."""
    have = set(isa)
    if family == "x86":
        parts = [label for flag, label in (("avx2", "AVX2"), ("avx512f", "AVX-512")) if flag in have]
        vnni = [f.upper() for f in ("avx512_vnni", "avx_vnni") if f in have]
        parts.append(f"VNNI ({', '.join(vnni)})" if vnni else "no VNNI")
        amx = [f.removeprefix("amx_").upper() for f in ("amx_tile", "amx_int8", "amx_bf16") if f in have]
        if amx:
            parts.append(f"AMX ({', '.join(amx)})")
        return ", ".join(parts)
    if family == "arm":
        parts = ["NEON"] if "asimd" in have else []
        parts.append("dot-product" if "asimddp" in have else "no dot-product")
        parts.append("i8mm" if "i8mm" in have else "no i8mm")
        return ", ".join(parts)
    return "ISA flags unknown"


def isa_tier(family: str | None, isa: list[str]) -> str:
    """The best INT8 instruction set of the machine, as a slug part: amx, avx512-vnni, avx2-vnni, avx512, avx2..."""
    have = set(isa)
    if family == "x86":
        for flags, tier in ((("amx_int8",), "amx"), (("avx512_vnni",), "avx512-vnni"), (("avx_vnni",), "avx2-vnni"),
                            (("avx512f",), "avx512"), (("avx2",), "avx2")):  # fmt: skip
            if set(flags) <= have:
                return tier
        return "x86-64"
    if family == "arm":
        return "i8mm" if "i8mm" in have else "dotprod" if "asimddp" in have else "neon"
    return platform.machine().lower() or "unknown"


def int8_target(family: str | None, isa: list[str]) -> str:
    """The class of INT8 kernels onnxruntime runs here, which decides the INT8 recipe that keeps quality:
    ``vnni`` (x86 with AVX512_VNNI or AVX_VNNI; AMX machines have it too), ``avx2`` (x86 without VNNI, AVX-512 or
    not: the u8s8 kernels' VPMADDUBSW can saturate), ``x86-64`` (no AVX2), on ARM ``i8mm``, ``dotprod`` or
    ``neon``. An INT8 file's recorded ``target_isa`` is compared with this."""
    have = set(isa)
    if family == "x86":
        return "vnni" if {"avx512_vnni", "avx_vnni"} & have else "avx2" if "avx2" in have else "x86-64"
    if family == "arm":
        return "i8mm" if "i8mm" in have else "dotprod" if "asimddp" in have else "neon"
    return "unknown"


def cpu_record(info: dict) -> dict:
    """The ISA part of the hardware record from ``parse_cpuinfo``'s dict: the flags, the reader's summary, whether
    the CPU has VNNI / AMX (None off x86) and its INT8 kernel class."""
    family, isa = info.get("family"), list(info.get("isa") or [])
    x86 = family == "x86"
    return {
        "isa": isa,
        "isa_summary": isa_summary(family, isa),
        "vnni": bool({"avx512_vnni", "avx_vnni"} & set(isa)) if x86 else None,
        "amx": bool({"amx_tile", "amx_int8", "amx_bf16"} & set(isa)) if x86 else None,
        "int8_target": int8_target(family, isa),
    }


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def model_slug(cpu_model: str | None) -> str:
    """``Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz`` -> ``intel-xeon-platinum-8375c``; ``AMD EPYC 7763 64-Core
    Processor`` -> ``amd-epyc-7763``."""
    text = cpu_model or "unknown-cpu"
    text = re.sub(r"\((r|tm)\)|@.*$|\b\d+-core\b|\bcpu\b|\bprocessor\b|\bwith radeon.*$", " ", text, flags=re.I)
    return _slugify(text)[:40].strip("-") or "unknown-cpu"


def slug(m: dict | None = None) -> str:
    """A short, stable name of the machine for folder names: model, usable cores, best INT8 ISA, and the GPU where
    there is one: ``amd-epyc-2c-avx512-vnni``, ``intel-xeon-platinum-8375c-8c-avx512-vnni-h100-80gb-hbm3``."""
    m = m if m is not None else _cpu() | {"gpus": _gpus()}
    out = f"{model_slug(m.get('cpu_model'))}-{m.get('cpus_usable') or m.get('cpus') or 0}c-"
    out += isa_tier(m.get("family"), m.get("isa") or [])
    gpus = m.get("gpus") or []
    if gpus:
        name = re.sub(r"^(nvidia|tesla)\s+", "", gpus[0].get("name", "gpu"), flags=re.I)
        out += f"-{len(gpus)}x" * (len(gpus) > 1) + "-" + _slugify(name)[:24].strip("-")
    return out


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    """A command's stdout, or None when it is missing, fails or takes over ``_TIMEOUT_S``: never raises."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@functools.cache
def _cpu() -> dict:
    info = parse_cpuinfo(_read("/proc/cpuinfo") or "")
    info["isa"] = effective_isa(info, cpu_features())  # what this process runs on, under an emulator too
    if not info["cpu_model"]:  # lscpu knows more ARM parts than the table above; macOS has no /proc
        lscpu = _run(["lscpu"]) or ""
        found = re.search(r"^Model name:\s*(.+)$", lscpu, flags=re.M)
        info["cpu_model"] = found.group(1).strip() if found else (platform.processor() or None)
    if info["family"] is None and platform.machine().lower() in ("arm64", "aarch64"):
        info["family"] = "arm"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return info | {"cpus": os.cpu_count(), "cpus_usable": usable}


@functools.cache
def _gpus() -> list[dict]:
    """NVIDIA GPUs by nvidia-smi (name, memory in MB); [] where there is none or nvidia-smi fails."""
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]) or ""
    gpus = []
    for line in out.strip().splitlines():
        name, _, mem = (part.strip() for part in line.rpartition(","))
        if name:
            gpus.append({"name": name, "memory_mb": int(mem) if mem.isdigit() else None})
    return gpus


def _memory_mb() -> int | None:
    found = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo") or "", flags=re.M)
    if found:
        return int(found.group(1)) // 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):
        return None


@functools.cache
def _machine() -> dict:
    cpu = _cpu()
    try:
        import onnxruntime as ort

        ort_version, providers = ort.__version__, list(ort.get_available_providers())
    except Exception:  # noqa: BLE001 - a record never fails: a broken install is recorded as missing
        ort_version, providers = None, []
    m = {
        "platform": platform.platform(),
        "cpus": cpu["cpus"],
        "processor": platform.processor(),
        "cpu_model": cpu["cpu_model"],
        "arch": platform.machine(),
        "family": cpu["family"],
        "cpus_usable": cpu["cpus_usable"],
        **cpu_record(cpu),
        "memory_mb": _memory_mb(),
        "gpus": _gpus(),
        "onnxruntime": ort_version,
        "providers": providers,
    }
    return m | {"slug": slug(m)}


def machine() -> dict:
    """The machine a figure was measured on (the hardware record; the same dict on every call)."""
    return copy.deepcopy(_machine())


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, with ``-dirty`` when tracked files differ from it; None
    outside a git checkout (an installed wheel) or where git is missing or slow."""
    here = Path(__file__).resolve()
    top = (_run(["git", "rev-parse", "--show-toplevel"], cwd=here.parent) or "").strip()
    if not top or Path(top, "onnx_search", here.name).resolve() != here:
        return None
    head = (_run(["git", "rev-parse", "HEAD"], cwd=Path(top)) or "").strip()
    if not head:
        return None
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(top))
    return head + ("-dirty" if status else "")


def command_line() -> str:
    """How this process was started, with the interpreter as ``python``: ``python -m onnx_search.bench.maps ...``."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    return shlex.join(["python", *argv[1:]])


def record() -> dict:
    """The full provenance of a result: the hardware record, library versions, git commit and command line."""
    return {"machine": machine(), "versions": library_versions(), "commit": git_commit(), "command": command_line()}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB.

    Linux: ``VmHWM`` of this address space. ``ru_maxrss`` would survive ``exec`` and report the parent's peak for a
    child started from a big process (seen here: 9.1 GB for a small ingest started by the scale bench).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m onnx_search.provenance", description=__doc__.splitlines()[0])
    ap.add_argument("--slug", action="store_true", help="print only the machine's short name (for folder names)")
    args = ap.parse_args(argv)
    print(slug() if args.slug else json.dumps(record(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
