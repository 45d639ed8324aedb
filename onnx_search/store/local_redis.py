"""Start (or reuse) a real Redis server owned by the project: 127.0.0.1, a password, append-only files."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..errors import StoreUnavailableError
from .net import mask_url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRedis:
    """A redis-server process whose data, config and log live in ``<data_dir>/redis``.

    It is started as a daemon so later runs reuse it (its address and password are in ``state.json``);
    ``stop()`` shuts it down, saving the append-only file.
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.dir = Path(data_dir).absolute() / "redis"
        self.state_file = self.dir / "state.json"

    def _client(self, state: dict, retries: int = 3) -> redis.Redis:
        return redis.Redis(
            retry=Retry(NoBackoff(), retries),
            host="127.0.0.1",
            port=state["port"],
            password=state["password"],
            socket_connect_timeout=2,
            socket_timeout=30,
        )

    def _alive(self) -> redis.Redis | None:
        if not self.state_file.is_file():
            return None
        try:
            state = json.loads(self.state_file.read_text())
            self._client(state, retries=0).ping()  # a dead server answers at once, without retries
            return self._client(state)
        except (redis.RedisError, OSError, ValueError, KeyError):
            return None

    def start(self, timeout: float = 10.0) -> redis.Redis:
        """A client of the running server, starting it first when none answers."""
        if client := self._alive():
            return client
        binary = shutil.which("redis-server")
        if not binary:
            raise StoreUnavailableError(
                "no redis-server on PATH to start the embedded catalogue: install it (`apt-get install "
                "redis-server`, or `make redis`), or give a server with `--redis-url redis://host:6379/0`"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        state = {"port": _free_port(), "password": secrets.token_hex(16)}
        conf = self.dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {state['port']}",
                    f"requirepass {state['password']}",
                    "protected-mode yes",
                    f"dir {self.dir}",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "daemonize yes",
                    f"pidfile {self.dir / 'redis.pid'}",
                    f"logfile {self.dir / 'redis.log'}",
                    "",
                ]
            )
        )
        os.chmod(conf, 0o600)
        subprocess.run([binary, str(conf)], check=True, capture_output=True, timeout=timeout)
        self.state_file.write_text(json.dumps(state))
        os.chmod(self.state_file, 0o600)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client := self._alive():
                return client
            time.sleep(0.05)
        raise StoreUnavailableError(
            f"started redis-server in {self.dir} but it did not answer within "
            f"{timeout:.0f}s; see {self.dir / 'redis.log'}"
        )

    def running(self) -> bool:
        """True when the server recorded in ``state.json`` answers."""
        return self._alive() is not None

    def stop(self) -> None:
        """Shut the server down (it writes its append-only file first); no-op when not running."""
        if self._alive():
            try:
                self._client(json.loads(self.state_file.read_text()), retries=0).shutdown()
            except (redis.ConnectionError, redis.ResponseError):
                pass


def connect_redis(url: str | None, data_dir: str | Path):
    """A Redis client: the user's server for ``redis://``/``rediss://`` URLs, else the project's own server."""
    if not url:
        return LocalRedis(data_dir).start()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise StoreUnavailableError(f"Redis URL {mask_url(url)!r} must start with redis://, rediss:// or unix://")
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise StoreUnavailableError(f"Redis at {mask_url(url)} does not answer: {exc}") from None
    return client
