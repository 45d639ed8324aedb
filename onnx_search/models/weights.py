"""Resolve the weights a conversion asks for: ImageNet via the framework's own cache, a local file, or a seed."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsUnavailableError
from .zoo import ModelSpec

log = logging.getLogger(__name__)

# where each source downloads ImageNet weights from, and the local files it loads
WEIGHTS_HOSTS = {"keras": "storage.googleapis.com", "torchvision": "download.pytorch.org"}
LOCAL_SUFFIXES = {"keras": (".h5", ".keras"), "torchvision": (".pth", ".pt")}


@dataclass(frozen=True)
class WeightsChoice:
    """What to pass to the model constructor, plus the label the ONNX metadata records."""

    pretrained: str | None  # "imagenet", a file path, or None for random init
    label: str  # "imagenet", "file:<path>", "random:<seed>"
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
        return cls("imagenet", label)

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


def resolve_weights(spec: ModelSpec, weights: str, seed: int = 0, probe_timeout: float = 3.0) -> WeightsChoice:
    """Turn ``imagenet`` / ``random`` / ``auto`` / a path into a WeightsChoice, failing fast when offline.

    ``auto`` takes ImageNet weights when they can be had and otherwise seeded random ones, and logs so loudly.
    """
    if weights == "auto":
        try:
            return resolve_weights(spec, "imagenet", seed, probe_timeout)
        except WeightsUnavailableError as exc:
            log.warning("FALLING BACK TO RANDOM WEIGHTS (seed %d) for %s: %s", seed, spec.name, exc)
            return WeightsChoice.random(seed)
    if weights == "random":
        return WeightsChoice.random(seed)
    if weights == "imagenet":
        cached = weights_cache_dir(spec) / spec.weights_file
        if cached.is_file():
            return WeightsChoice("imagenet", "imagenet")
        host = WEIGHTS_HOSTS[spec.source]
        if not _host_reachable(host, probe_timeout):
            framework = "torchvision" if spec.source == "torchvision" else "Keras"
            raise WeightsUnavailableError(
                f"ImageNet weights for {spec.name} are not cached and cannot be downloaded "
                f"({host} is unreachable). {framework} looked for {cached}. Either copy "
                f"{spec.weights_file} into {cached.parent}, or convert with weights 'random' "
                f"(`--weights random`; vectors are then meaningless for real search)."
            )
        return WeightsChoice("imagenet", "imagenet")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(
            f"weights {weights!r} for {spec.name}: no such file; use 'imagenet', 'random' or a path to a "
            f"{' or '.join(LOCAL_SUFFIXES[spec.source])} file"
        )
    return WeightsChoice.from_file(path.resolve())
