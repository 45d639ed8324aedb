"""Every error meant for the user derives from OnnxSearchError: the CLI prints its message, no traceback.

This module imports nothing of ours, so any layer can raise these without an import going the wrong way.
"""

from __future__ import annotations


class OnnxSearchError(Exception):
    """An error whose message says what went wrong and what to do next."""


class ConfigError(OnnxSearchError, ValueError):
    """A configuration problem, with the file, line and key it concerns."""


class UnknownModelError(OnnxSearchError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class ModelFileError(OnnxSearchError):
    """A .onnx file that is missing, unloadable or lacks onnx-search's recipe."""


class WeightsUnavailableError(OnnxSearchError):
    """Pretrained weights asked for but neither cached nor downloadable."""


class ParityError(OnnxSearchError):
    """A converted graph disagrees with its source framework beyond the tolerance."""


class ProviderError(OnnxSearchError):
    """A requested execution provider did not load and strict mode forbids falling back."""


class DecodeError(OnnxSearchError, ValueError):
    """An image that cannot be turned into pixels; the message is the reason shown to the user."""


class StoreUnavailableError(OnnxSearchError):
    """Milvus or Redis is down, locked or misconfigured; the message says which and what to do."""


class CollectionMismatchError(OnnxSearchError):
    """An existing collection does not fit the model (dimension, model file), or does not exist."""


class ModelChangedError(CollectionMismatchError):
    """The model file differs from the one a collection was built with."""


class InputFolderError(OnnxSearchError, NotADirectoryError):
    """An image folder that does not exist or is not a directory."""


class ChildFailedError(OnnxSearchError):
    """A conversion child process that died (killed, out of memory, crashed) or failed unexpectedly."""


class ClusterUnavailableError(OnnxSearchError):
    """A Ray cluster that could not be started or reached."""
