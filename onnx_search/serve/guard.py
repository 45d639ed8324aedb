"""What the explorer refuses: a non-loopback bind without a token, ids that are not catalogue ids, big uploads."""

from __future__ import annotations

import ipaddress
import re

from ..errors import OnnxSearchError

DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024  # bytes
UPLOAD_MAX_PIXELS = 50_000_000  # a decoded upload above this is refused (ingest's guard, a tighter limit)
_ID = re.compile(r"[0-9]{1,19}")


class ServeError(OnnxSearchError):
    """A refused server setting (address, token) with what to do instead."""


class RequestError(OnnxSearchError):
    """A request the explorer answers with a 4xx status and this message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost`` are loopback; every other name or address is not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine unless every request must carry a token."""
    if not is_loopback(host) and not token:
        raise ServeError(
            f"--host {host} would expose the explorer (and every catalogued image) beyond this machine: "
            "give --token SECRET (at least 16 characters) too, or keep the default 127.0.0.1"
        )
    if token is not None and len(token) < 16:
        raise ServeError("--token must be at least 16 characters long")


def parse_id(text: str) -> int:
    """A catalogue id from a URL segment: digits only (no path, no sign), within Milvus' INT64."""
    if not _ID.fullmatch(text or "") or int(text) >= 1 << 63:
        raise RequestError(400, f"not a catalogue id: {text[:40]!r} (images are served by numeric id only)")
    return int(text)


def parse_k(text: str | None, default: int = 10, most: int = 100) -> int:
    try:
        k = int(text) if text not in (None, "") else default
    except ValueError:
        raise RequestError(400, f"k must be a whole number, got {text[:20]!r}") from None
    if not 1 <= k <= most:
        raise RequestError(400, f"k must be between 1 and {most}, got {k}")
    return k
