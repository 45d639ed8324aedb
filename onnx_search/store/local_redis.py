"""Start (or reuse) a real Redis server owned by the project: 127.0.0.1, a password, append-only files.

The server ends with the process that started it: ``release()`` (called by ``Stores.close()`` and at exit) stops
it, writing its append-only file first, unless the user asked to keep it (``keep=True`` or
``ONNX_SEARCH_KEEP_REDIS=1``). A process that only reused a running server leaves it running. When the starter
ends while another process still holds a connection, the server is handed on: the last user to leave stops it.
"""

from __future__ import annotations

import atexit
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

KEEP_ENV = "ONNX_SEARCH_KEEP_REDIS"


def keep_requested() -> bool:
    """Whether the environment asks to keep the embedded Redis running after a command ends."""
    return os.environ.get(KEEP_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRedis:
    """A redis-server process whose data, config and log live in ``<data_dir>/redis``.

    It is started as a daemon (its address, password, the pid of the process that started it and whether to keep
    it are in ``state.json``), so a command started meanwhile reuses it; ``release()`` stops it when this process
    started it (see the module's docstring); ``stop()`` shuts it down unconditionally, saving the append-only file.
    """

    def __init__(self, data_dir: str | Path, keep: bool | None = None) -> None:
        self.dir = Path(data_dir).absolute() / "redis"
        self.state_file = self.dir / "state.json"
        self.keep = keep_requested() if keep is None else keep
        self.started = False  # whether this object started the server (so this process owns it)
        self.name = f"onnx-search-{os.getpid()}-{secrets.token_hex(4)}"  # this object's connections, in CLIENT LIST

    def _client(self, state: dict, retries: int = 3) -> redis.Redis:
        return redis.Redis(
            retry=Retry(NoBackoff(), retries),
            host="127.0.0.1",
            port=state["port"],
            password=state["password"],
            socket_connect_timeout=2,
            socket_timeout=30,
            client_name=self.name,
        )

    def _state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def _write_state(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.state_file)

    def _alive(self) -> redis.Redis | None:
        state = self._state()
        if state is None:
            return None
        try:
            self._client(state, retries=0).ping()  # a dead server answers at once, without retries
            return self._client(state)
        except (redis.RedisError, OSError, ValueError, KeyError):
            return None

    def start(self, timeout: float = 10.0) -> redis.Redis:
        """A client of the running server, starting it first when none answers (then this process owns it)."""
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
        self._write_state(state | {"owner_pid": os.getpid(), "keep": self.keep})
        self.started = True
        if not self.keep:
            atexit.register(self.release)  # a path that never reaches Stores.close() (an error, Ctrl-C)
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

    def server_pid(self) -> int | None:
        """The redis-server's process id from its pid file (None when it has none)."""
        try:
            return int((self.dir / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def release(self) -> bool:
        """Stop the server as this process leaves it, when this process should; True when it stopped it.

        It stops it when nobody asked to keep it, this process started it (or the process that did is gone or
        handed it on) and no other client is connected. A starter leaving while others are connected hands it on
        (``owner_pid`` null), so the last of them stops it. A process that reused a live owner's server leaves it.
        """
        state = self._state()
        if state is None or state.get("keep"):
            return False
        owner = state.get("owner_pid")
        mine = self.started and owner == os.getpid()
        if not mine and owner is not None and _pid_alive(owner):
            return False
        client = self._alive()
        if client is None:
            return False
        try:
            others = [c for c in client.client_list() if c.get("name") != self.name]
        except redis.RedisError:
            return False
        if others:
            if mine:
                self._write_state(state | {"owner_pid": None})
            return False
        self.stop()
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (it writes its append-only file first) and wait until its process has ended;
        no-op when not running."""
        if self._alive():
            pid = self.server_pid()
            try:
                self._client(json.loads(self.state_file.read_text()), retries=0).shutdown()
            except (redis.ConnectionError, redis.ResponseError):
                pass
            deadline = time.monotonic() + timeout
            while pid is not None and _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)


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
