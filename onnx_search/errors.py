"""Exceptions whose messages are meant for the user: the CLI prints them without a traceback."""

from __future__ import annotations

from .config import ConfigError
from .convert import ParityError
from .preprocess import DecodeError
from .runner import ProviderError
from .stores import StoreUnavailableError
from .vectors import CollectionMismatchError
from .weights import WeightsUnavailableError

USER_ERRORS: tuple[type[BaseException], ...] = (
    ParityError,
    ConfigError,
    DecodeError,
    ProviderError,
    WeightsUnavailableError,
    NotADirectoryError,
    FileNotFoundError,
    StoreUnavailableError,
    CollectionMismatchError,
)
