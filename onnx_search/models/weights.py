"""Resolve the weights a conversion asks for: ImageNet through Keras' cache, a local .h5, or seeded random."""

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

KERAS_WEIGHTS_HOST = "storage.googleapis.com"


@dataclass(frozen=True)
class WeightsChoice:
    """What to pass to the model constructor, plus the label the ONNX metadata records."""

    keras_arg: str | None  # "imagenet", a file path, or None for random init
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
        return self.keras_arg is None


def keras_cache_dir() -> Path:
    """Where Keras caches downloaded weights (``$KERAS_HOME/models`` or ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


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
        cached = keras_cache_dir() / spec.weights_file
        if cached.is_file():
            return WeightsChoice("imagenet", "imagenet")
        if not _host_reachable(KERAS_WEIGHTS_HOST, probe_timeout):
            raise WeightsUnavailableError(
                f"ImageNet weights for {spec.name} are not cached and cannot be downloaded "
                f"({KERAS_WEIGHTS_HOST} is unreachable). Keras looked for {cached}. Either copy "
                f"{spec.weights_file} into {cached.parent}, or convert with weights 'random' "
                f"(`--weights random`; vectors are then meaningless for real search)."
            )
        return WeightsChoice("imagenet", "imagenet")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(
            f"weights {weights!r} for {spec.name}: no such file; use 'imagenet', 'random' or a path to a .h5 file"
        )
    return WeightsChoice.from_file(path.resolve())
