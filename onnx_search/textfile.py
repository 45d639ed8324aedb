"""Reading a small text file the user gave (a config, a qrels file) with one-line errors for every way it fails."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError


def read_user_text(path: str | Path, missing: str, guess: str) -> str:
    """The UTF-8 text of ``path``; a missing, unreadable or non-UTF-8 file is a one-line ConfigError.

    ``missing`` is the whole message for a missing file; ``guess`` names what the file should be
    ("the YAML config", "a qrels file") in the message for a file that is not text.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(missing)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start}); is it {guess}?") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
