"""Connecting to the two stores, failing fast with messages that name what did not answer."""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit


class StoreUnavailableError(RuntimeError):
    """Milvus or Redis is down, locked or misconfigured; the message says which and what to do."""


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


def connect_redis(url: str | None, data_dir: str | Path):
    """A Redis client: the user's server for ``redis://``/``rediss://`` URLs, else the project's own server."""
    import redis

    if not url:
        from .redis_server import LocalRedis

        return LocalRedis(data_dir).start()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise StoreUnavailableError(f"Redis URL {mask_url(url)!r} must start with redis://, rediss:// or unix://")
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise StoreUnavailableError(f"Redis at {mask_url(url)} does not answer: {exc}") from None
    return client


def connect_milvus(
    uri: str | None,
    data_dir: str | Path,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    timeout: float = 3.0,
):
    """A MilvusClient: Milvus Lite in ``<data_dir>/milvus/milvus.db`` when ``uri`` is empty, else the server."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    if not uri:
        folder = Path(data_dir).absolute() / "milvus"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "milvus.db"
        # Milvus Lite's in-process gRPC server logs a traceback for AllocTimestamp, which it does not
        # implement and pymilvus only uses as an optional hint; nothing is wrong, so keep it quiet.
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        logging.getLogger("milvus_lite.server_manager").setLevel(logging.CRITICAL)  # we explain a lock below
        try:
            return MilvusClient(str(path))
        except MilvusException as exc:
            raise StoreUnavailableError(
                f"cannot open Milvus Lite at {path}: {exc.message}. Only one process may open a Milvus Lite "
                "folder at a time: wait for the other onnx-search run (or notebook) to finish, or use a Milvus "
                "server with `--milvus-uri http://host:19530`"
            ) from None
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https", "tcp", "grpc") or not parts.hostname:
        raise StoreUnavailableError(
            f"Milvus URI {mask_url(uri)!r} should look like http://host:19530 (or leave it unset for Milvus Lite)"
        )
    probe_tcp(parts.hostname, parts.port or 19530, "Milvus", timeout)
    kwargs = {"uri": uri, "timeout": 10}
    if token:
        kwargs["token"] = token
    elif user:
        kwargs.update(user=user, password=password or "")
    try:
        return MilvusClient(**kwargs)
    except MilvusException as exc:
        raise StoreUnavailableError(f"Milvus at {mask_url(uri)} refused the connection: {exc.message}") from None
