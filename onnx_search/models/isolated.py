"""Conversions and quantisations in a child process: TensorFlow and torch never load in the caller.

A conversion peaks at gigabytes (VGG16: about 5 GB for a 528 MB file) and the frameworks keep that memory until
the process ends, so each ``convert_model`` / ``make_variant`` runs in a fresh interpreter
(``python -m onnx_search.models.isolated REQUEST RESULT``). The parent waits and reads back the ConvertResult,
the child's peak RSS (VmHWM) and its log records; an OnnxSearchError in the child is raised again in the parent as
the same one-line error. The frameworks' own console output (TensorFlow, absl, gRPC) goes to a log file that is
kept only when the child fails.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ChildFailedError, OnnxSearchError
from ..provenance import peak_rss_mb
from .convert import ConvertResult, already_converted
from .frameworks import SINGLE_FRAMEWORK_ENV
from .user import USER_SOURCES
from .zoo import get_spec

log = logging.getLogger(__name__)

# quiet the frameworks' C++ logging in the child (kept in its log file either way); one framework per child, so
# a Keras conversion does not load torch first (the import-order rule of frameworks.py is for mixed processes)
CHILD_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "GRPC_VERBOSITY": "ERROR", "GLOG_minloglevel": "2",
             "ABSL_MIN_LOG_LEVEL": "2", SINGLE_FRAMEWORK_ENV: "1"}  # fmt: skip
TASKS = {
    "convert": ("onnx_search.models.convert", "convert_model"),
    "variant": ("onnx_search.models.variants", "make_variant"),
}


@dataclass
class ChildResult:
    """What a child did: the ConvertResult, its own peak RSS and the wall time including its start."""

    task: str
    result: ConvertResult
    peak_rss_mb: float
    seconds: float
    child: bool = True  # False: an up-to-date file checked in the caller, no child started

    def as_dict(self) -> dict:
        """The figures a run records about this child (cost.json, summary)."""
        return {"task": self.task, "model": self.result.name, "skipped": self.result.skipped, "child": self.child,
                "peak_rss_mb": round(self.peak_rss_mb, 1), "seconds": round(self.seconds, 2)}  # fmt: skip


def convert_isolated(name: str, out_dir: str | Path = "models", **kwargs) -> ChildResult:
    """``convert_model(name, out_dir, **kwargs)`` in a child process; a registry model already converted from the
    same request is checked here and starts no child (``child`` False, ``peak_rss_mb`` 0)."""
    t0 = time.perf_counter()
    if not kwargs.get("force") and kwargs.get("user") is None:
        try:
            done = already_converted(name, out_dir, kwargs.get("weights", "random"), kwargs.get("seed", 0))
        except Exception:  # noqa: BLE001 - an unknown model or unavailable weights: the child says it, as one line
            done = None
        if done is not None:
            return ChildResult("convert", done, 0.0, time.perf_counter() - t0, child=False)
    return run_child("convert", {"name": name, "out_dir": str(out_dir), **kwargs})


def variant_isolated(
    name: str, variant: str, models_dir: str | Path = "models", calibration: list[Path] | None = None, **kwargs
) -> ChildResult:
    """``make_variant(name, variant, models_dir, calibration, **kwargs)`` in a child process; a variant already
    made from the same inputs is checked here and starts no child (``child`` False)."""
    from .variants import variant_made

    t0 = time.perf_counter()
    try:
        done = variant_made(name, variant, models_dir, calibration, **kwargs)
    except Exception:  # noqa: BLE001 - a missing parent or bad calibration set: the child says it, as one line
        done = None
    if done is not None:
        return ChildResult("variant", done, 0.0, time.perf_counter() - t0, child=False)
    if kwargs.get("calibration_root") is not None:
        kwargs["calibration_root"] = str(kwargs["calibration_root"])
    files = [str(p) for p in calibration] if calibration is not None else None
    return run_child("variant", {"name": name, "variant": variant, "models_dir": str(models_dir),
                                 "calibration": files, **kwargs})  # fmt: skip


def run_child(task: str, kwargs: dict) -> ChildResult:
    """Run one task in a fresh interpreter and return its result, or raise its error here."""
    with tempfile.TemporaryDirectory(prefix="onnx-search-child-") as tmp:
        request, result, logfile = Path(tmp, "request.json"), Path(tmp, "result.json"), Path(tmp, "child.log")
        request.write_text(
            json.dumps({"task": task, "kwargs": kwargs, "level": logging.getLogger().getEffectiveLevel()})
        )
        env = CHILD_ENV | _backend_env(task, kwargs) | dict(os.environ) | {SINGLE_FRAMEWORK_ENV: "1"}  # the user's win
        t0 = time.perf_counter()
        with open(logfile, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(request), str(result)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
            rc, seen_mb = _wait_watching(proc)
        seconds = time.perf_counter() - t0
        data = json.loads(result.read_text()) if result.is_file() else None
        if data is None:
            raise ChildFailedError(_death(task, kwargs["name"], rc, seen_mb, logfile))
        for name, level, message in data["logs"]:
            logging.getLogger(name).log(level, "%s", message)
        if "error" in data:
            raise _rebuild_error(data["error"], kwargs["name"] if kwargs.get("user") else None)
        r = data["result"]
        cr = ConvertResult(r["name"], Path(r["path"]), r["skipped"], r["metadata"], r["seconds"])
        return ChildResult(task, cr, data["peak_rss_mb"], seconds)


def _backend_env(task: str, kwargs: dict) -> dict[str, str]:
    """The environment a conversion's backend asks for in its child (``CHILD_ENV`` of the backend module)."""
    if task != "convert":
        return {}
    try:
        user = kwargs.get("user")
        source = USER_SOURCES.get(user["source"], user["source"]) if user else get_spec(kwargs["name"]).source
    except Exception:  # noqa: BLE001 - an unknown model or source is the child's to report, as one line
        return {}
    if source in ("keras", "user-keras"):  # both export with tf2onnx (convert_keras.export)
        from .convert_keras import CHILD_ENV as KERAS_ENV

        return dict(KERAS_ENV)
    return {}


def _vmhwm_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of a running process in MB; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _wait_watching(proc: subprocess.Popen, every: float = 0.1) -> tuple[int, float]:
    """Wait for the child, reading its peak RSS as it runs: a child killed (SIGKILL, OOM) cannot report its own."""
    seen = 0.0
    while True:
        try:
            return proc.wait(timeout=every), seen
        except subprocess.TimeoutExpired:
            seen = max(seen, _vmhwm_mb(proc.pid))
        except BaseException:  # Ctrl-C in the parent: the child goes too
            proc.kill()
            proc.wait()
            raise


def _death(task: str, name: str, rc: int, seen_mb: float, logfile: Path) -> str:
    """A one-line account of a child that wrote no result: the model, how it ended, its peak memory as seen."""
    how = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
    how += f" at a peak of at least {seen_mb:,.0f} MB resident memory"  # as last seen from here
    if rc in (-9, 137):
        how += " (often: out of memory; close other programs or convert one model at a time)"
    lines = [ln for ln in logfile.read_text(errors="replace").splitlines() if ln.strip()]
    last = f"; its last output: {lines[-1][:300]}" if lines else ""
    return f"{task} of {name} in a child process {how}{last}"


def _rebuild_error(err: dict, user_model: str | None = None) -> Exception:
    """The child's exception as the same class here when it is one of ours, else a one-line error with the cause
    (for the user's own model, ``user_model``, one line naming it; the traceback is logged, shown with -v)."""
    if err.get("ours"):
        try:
            cls = getattr(importlib.import_module(err["module"]), err["qualname"])
            if isinstance(cls, type) and issubclass(cls, OnnxSearchError):
                return cls(err["message"])
        except (ImportError, AttributeError, TypeError):
            pass
        return OnnxSearchError(err["message"])
    if user_model:  # most likely the user's model or code, not ours: one line, the traceback under -v
        log.info("the conversion child's traceback:\n%s", err["traceback"])
        first = (err["message"].strip().splitlines() or [""])[0][:200]
        return ChildFailedError(
            f"{user_model}: {err['qualname']} while converting your model: {first}; run with -v for the traceback, "
            "and report it if your model is not the cause"
        )
    return ChildFailedError(
        f"{err['qualname']} in the conversion child: {err['message']} (a bug: please report it with this "
        f"traceback)\n{err['traceback']}"
    )


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("onnx_search"):
            self.records.append((record.name, record.levelno, record.getMessage()))


def _child(request: Path, result: Path) -> int:
    """The child's side: run the task, write result.json (result or error, log records, peak RSS)."""
    req = json.loads(request.read_text())
    collect = _Collect()
    logging.basicConfig(level=req["level"], format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().addHandler(collect)
    kwargs = dict(req["kwargs"])
    if kwargs.get("calibration") is not None:
        kwargs["calibration"] = [Path(p) for p in kwargs["calibration"]]
    out: dict = {}
    try:
        module, fn = TASKS[req["task"]]
        r = getattr(importlib.import_module(module), fn)(**kwargs)
        out["result"] = asdict(r) | {"path": str(r.path)}
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent
        out["error"] = {"ours": isinstance(exc, OnnxSearchError), "module": type(exc).__module__,
                        "qualname": type(exc).__qualname__, "message": str(exc),
                        "traceback": traceback.format_exc()}  # fmt: skip
    out |= {"logs": collect.records, "peak_rss_mb": peak_rss_mb()}
    tmp = result.with_suffix(".partial")
    tmp.write_text(json.dumps(out, default=str))
    os.replace(tmp, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(_child(Path(sys.argv[1]), Path(sys.argv[2])))
