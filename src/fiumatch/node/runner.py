"""Start and stop a node as a real uvicorn subprocess (demo, tests, ``fiumatch node serve``).

``serve(node_dir)`` runs in the current process (TLS on the node's certificate). ``NodeProcess``
starts ``fiumatch node serve`` in its own process group, polls ``/healthz`` over TLS until the
node answers (bounded), and on ``stop()`` kills the whole group (SIGTERM, then SIGKILL). An
``atexit`` hook stops every process still running, so nothing outlives the caller.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["KEEP_ALIVE_SECONDS", "NodeProcess", "free_port", "serve"]

KEEP_ALIVE_SECONDS = 75
"""How long the node keeps an idle HTTP connection open (uvicorn's default is 5 s). Peers keep
one connection to it between sessions (``client.peer``) and drop it idle sooner than this, so
the server never closes a connection a peer is about to reuse."""

_RUNNING: set[NodeProcess] = set()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve(node_dir: Path, *, log_level: str = "warning") -> None:
    """Validate settings, unseal keys and serve the node with TLS (blocks)."""
    import uvicorn

    from fiumatch.node.app import build_service, create_app

    service = build_service(node_dir)
    settings = service.settings
    tls: dict[str, str] = {}
    if settings.tls_enabled:
        assert settings.tls_cert is not None and settings.tls_key is not None
        tls = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
    uvicorn.run(
        create_app(service),
        host=settings.listen_host,
        port=settings.listen_port,
        log_level=log_level,
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        **tls,  # type: ignore[arg-type]
    )


class NodeProcess:
    """One node served by a child process in its own process group."""

    def __init__(self, node_dir: Path, url: str, *, log: Path | None = None) -> None:
        self.node_dir = Path(node_dir)
        self.url = url.rstrip("/")
        self.log = log or self.node_dir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> NodeProcess:
        out = self.log.open("ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fiumatch.cli.main",
                "node",
                "serve",
                "--dir",
                str(self.node_dir),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        out.close()
        _RUNNING.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"node at {self.node_dir} exited at start:\n{tail}")
            try:
                if httpx.get(self.url + "/healthz", verify=False, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"node at {self.node_dir} did not become ready in {timeout} s")

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.proc = None
        _RUNNING.discard(self)

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for node in list(_RUNNING):
        node.stop()
