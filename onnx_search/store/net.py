"""Addresses: masking passwords in URLs, and a quick TCP probe so a store that is down fails in seconds."""

from __future__ import annotations

import re
import socket

from ..errors import StoreUnavailableError


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe for logs and results."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def probe_tcp(host: str, port: int, what: str, timeout: float = 3.0) -> None:
    """Raise StoreUnavailableError unless host:port accepts a TCP connection within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise StoreUnavailableError(
            f"{what} at {host}:{port} does not answer ({exc.strerror or exc}); "
            "start it, fix the address, or leave it unset for the embedded default"
        ) from None
