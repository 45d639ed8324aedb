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

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class Busy(RequestError):
    """More work is waiting than the explorer queues: answered 503 with a Retry-After of ``retry_after`` s."""

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(503, message, retry_after)


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


K_MIN, K_MAX, K_DEFAULT = 1, 100, 10  # the k a query may ask for (GET /api/models: "k")
LIMIT_MAX = 200  # gallery page size


def bearer_token(header: str) -> str:
    """The credentials of an ``Authorization: Bearer X`` header; the scheme is case-insensitive (RFC 7235)."""
    scheme, _, rest = header.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else ""


def parse_int(text: str | None, name: str, default: int, least: int, most: int) -> int:
    """A whole-number query parameter within [least, most] (400 with the range otherwise)."""
    try:
        n = int(text) if text not in (None, "") else default
    except ValueError:
        raise RequestError(400, f"{name} must be a whole number, got {text[:20]!r}") from None
    if not least <= n <= most:
        raise RequestError(400, f"{name} must be between {least} and {most}, got {n}")
    return n


def parse_k(text: str | None, default: int = K_DEFAULT, most: int = K_MAX) -> int:
    return parse_int(text, "k", default, K_MIN, most)


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})


def write_refusal(method: str, headers, scheme: str, raw_body: bool) -> tuple[int, str] | None:
    """Why a state-changing request does not come from the explorer's own page, or None when it may go on.

    Refused (403): ``Sec-Fetch-Site`` cross-site or same-site, or an ``Origin`` other than the server's own
    (``scheme://Host``; the opaque ``null`` included). Refused (415): a body that is not ``application/json``,
    unless the route takes a raw body (an image upload), which other sites are kept from by the origin rule. A
    request without a body goes on to its route (a wrong method is 405 there; a JSON route refuses no body).
    ``headers`` is any mapping with lower-case keys (Starlette's ``Headers``)."""
    if method.upper() not in UNSAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site in FOREIGN_FETCH_SITES:
        return 403, f"refused a {site} {method} (Sec-Fetch-Site): only the explorer's own page may write"
    origin = headers.get("origin")
    own = f"{scheme}://{headers.get('host', '')}".lower()
    if origin is not None and origin.strip().lower().rstrip("/") != own:
        return 403, f"refused a {method} from origin {origin[:80]!r}: only the explorer's own page ({own}) may write"
    has_body = headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers
    if has_body and not raw_body:
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            return 415, f"send the body as Content-Type: application/json (got {kind or 'none'!r})"
    return None
