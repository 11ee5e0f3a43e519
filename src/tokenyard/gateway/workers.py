"""``tokenyard serve --workers N``: N gateway processes on one port, and the supervisor that keeps them running.

Each worker is a full gateway (its own event loop, connection pools and queues) listening on the same
``host:port`` with ``SO_REUSEPORT``, so the kernel spreads new connections across them. The supervisor reserves
the port first (a bound, never listening ``SO_REUSEPORT`` socket, which also resolves ``--port 0``; a port any
other socket listens on, another supervisor's workers included, is refused as for one process), starts the
workers with the config on their stdin, prints ``tokenyard serve listening on http://HOST:PORT`` once every worker
accepts connections, restarts a worker that dies (with a capped back-off), and on SIGINT/SIGTERM ends each worker
by its PID (SIGTERM, which lets requests in progress finish as in one process, then SIGKILL after a grace
period). A worker that cannot start (a port in use, a TLS file that does not load) says why over its readiness
pipe, in the one line ``tokenyard serve`` prints.

Limits, budgets and caches hold across the workers only on a shared state: use ``state: redis://...``. With
``state: memory`` each worker has its own (a warning says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys

import msgspec
from aiohttp import web

from tokenyard import runtime
from tokenyard.config import GatewayConfig
from tokenyard.gateway.cli import start_failure
from tokenyard.gateway.tls import listener_scheme
from tokenyard.security.keystore import KeyStoreError

READY = "tokenyard worker ready"
FAILED = "tokenyard worker failed"
# A worker drains like one process: its listener gives requests in progress up to 60 s (native/site.py,
# docs/server.md); SIGKILL only after that and a margin to close, never in the middle of the drain.
GRACE_S = 65.0
MAX_BACKOFF_S = 5.0


class WorkerStartError(RuntimeError):
    """A worker could not start: ``line`` is the one line to print, ``code`` the exit code it calls for."""

    def __init__(self, line: str, code: int = 1) -> None:
        super().__init__(line)
        self.line = line
        self.code = code


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound ``SO_REUSEPORT`` socket holding ``host:port`` (a free port for 0); workers bind beside it.

    ``SO_REUSEPORT`` alone would let the workers join a port that another process (of the same user) listens on
    with ``SO_REUSEPORT`` too, such as a second ``serve --workers`` on the same port, and silently split its
    connections: a plain bind first refuses a port anything listens on (and resolves port 0).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with _bound(family, host, port, reuse_port=False) as probe:
        port = probe.getsockname()[1]
    return _bound(family, host, port, reuse_port=True)


def _bound(family: socket.AddressFamily, host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the listeners: TIME_WAIT is no conflict
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        # the words asyncio uses for a listener's bind, so `serve` prints the same line as with one process
        text = (exc.strerror or str(exc)).lower()
        raise OSError(exc.errno, f"error while attempting to bind on address {(host, port)!r}: {text}") from None
    return sock


class Worker:
    """One worker process and its restarts."""

    def __init__(self, index: int, config: bytes) -> None:
        self.index = index
        self._config = config
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0

    async def spawn(self) -> None:
        """Start the process and wait until it accepts connections.

        Readiness comes over a pipe of its own; the worker's stdout and stderr are the supervisor's, so access
        logs flow as they would from one process (and a pipe nobody reads can never block a worker).
        """
        ready_r, ready_w = os.pipe()
        try:
            proc = self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tokenyard.gateway.workers", str(self.index), str(ready_w),
                stdin=asyncio.subprocess.PIPE, pass_fds=(ready_w,),
                start_new_session=True)  # a terminal's Ctrl-C reaches the supervisor only; it ends them by PID
        finally:
            os.close(ready_w)
        try:
            assert proc.stdin is not None
            proc.stdin.write(self._config)
            proc.stdin.close()
            line = (await asyncio.to_thread(_read_line, ready_r)).decode(errors="replace")
        finally:
            os.close(ready_r)
        if line.startswith(READY):
            return
        code = await proc.wait()
        if line.startswith(FAILED):  # "FAILED CODE LINE": the worker's own one-line reason
            exit_code, _, reason = line[len(FAILED):].strip().partition(" ")
            raise WorkerStartError(reason, int(exit_code))
        raise WorkerStartError(f"error: worker {self.index} exited before it was ready (code {code})")

    def terminate(self) -> None:
        """SIGTERM the process, if it runs (``stop`` then waits for it)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    async def stop(self) -> None:
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def _read_line(fd: int) -> bytes:
    """One line from the readiness pipe (or what came before the worker closed it)."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


async def _keep_alive(worker: Worker, stopping: asyncio.Event) -> None:
    """Restart the worker whenever it exits while the supervisor is not stopping."""
    backoff = 0.1
    while not stopping.is_set():
        proc = worker.process
        assert proc is not None
        code = await proc.wait()
        if stopping.is_set():
            return
        print(f"tokenyard serve: worker {worker.index} (pid {proc.pid}) exited with {code}; restarting",
              file=sys.stderr, flush=True)
        await asyncio.sleep(backoff)
        if stopping.is_set():
            return
        backoff = min(backoff * 2, MAX_BACKOFF_S)
        worker.restarts += 1
        try:
            await worker.spawn()
        except RuntimeError as exc:
            print(f"tokenyard serve: {exc}", file=sys.stderr, flush=True)


async def supervise(config: GatewayConfig, workers: int) -> None:
    """Run ``workers`` gateway processes on the config's listener until SIGINT/SIGTERM."""
    if config.state == "memory":
        print("tokenyard serve: warning: state is 'memory', so each worker keeps its own limits and cache; "
              "use state: redis://... to share them", file=sys.stderr, flush=True)
    host = config.listen.host
    holder = reserve_port(host, config.listen.port)
    port = holder.getsockname()[1]
    listen = msgspec.structs.replace(config.listen, port=port)
    payload = msgspec.json.encode(msgspec.structs.replace(config, listen=listen))
    pool = [Worker(i, payload) for i in range(workers)]
    stopping = asyncio.Event()
    keepers: list[asyncio.Task[None]] = []
    # Signals are caught from the start: SIGINT/SIGTERM while the workers are still starting stops them cleanly
    # (the default action killed the supervisor alone, and each worker then failed on the readiness pipe).
    shutdown = asyncio.create_task(runtime.wait_for_shutdown())
    await asyncio.sleep(0)  # the task installs its signal handlers
    try:
        starting = asyncio.gather(*(w.spawn() for w in pool), return_exceptions=True)
        await asyncio.wait((starting, shutdown), return_when=asyncio.FIRST_COMPLETED)
        if shutdown.done():
            stopping.set()
            for worker in pool:
                worker.terminate()
            await starting  # a worker spawned meanwhile is ready or gone by now; the finally ends it
            return
        started = starting.result()
        failures = [result for result in started if isinstance(result, BaseException)]
        if failures:  # the first reason is enough (every worker has the same config); the others are stopped
            raise failures[0]
        keepers = [asyncio.create_task(_keep_alive(w, stopping)) for w in pool]
        shown = f"[{host}]" if ":" in host else host
        scheme = listener_scheme(config.listen)
        pids = ", ".join(str(w.process.pid) for w in pool if w.process is not None)
        print(f"tokenyard serve listening on {scheme}://{shown}:{port}", flush=True)
        print(f"tokenyard serve: {workers} workers (pids {pids})", file=sys.stderr, flush=True)
        await shutdown
    finally:
        stopping.set()
        shutdown.cancel()
        for task in keepers:
            task.cancel()
        await asyncio.gather(*(w.stop() for w in pool))
        holder.close()


async def _run_worker(config: GatewayConfig, index: int, ready_fd: int) -> int:
    from tokenyard.gateway.app import build_app, inference_site
    from tokenyard.gateway.tls import start_admin_listener

    runner = web.AppRunner(build_app(config), handler_cancellation=True, access_log=None)
    try:
        try:  # a failure closes what was opened (finally) and is reported as one line, not a traceback
            await runner.setup()
            site = inference_site(runner, config, config.listen.host, config.listen.port, reuse_port=True)
            await site.start()
            if index == 0:  # a separate admin listener (admin.listen) is served by the first worker only
                await start_admin_listener(runner, config)
        except KeyStoreError as exc:
            _report(ready_fd, f"{FAILED} 2 error: key_store.path: {exc}")
            return 2
        except OSError as exc:  # a port in use, a TLS file that does not load
            _report(ready_fd, f"{FAILED} 1 {start_failure(config, exc)}")
            return 1
        if not _report(ready_fd, f"{READY} {index}"):
            return 0
        shutdown = asyncio.create_task(runtime.wait_for_shutdown())
        orphaned = asyncio.create_task(_parent_gone(os.getppid()))
        await asyncio.wait((shutdown, orphaned), return_when=asyncio.FIRST_COMPLETED)
        for task in (shutdown, orphaned):
            task.cancel()
        await asyncio.gather(shutdown, orphaned, return_exceptions=True)
        return 0
    finally:
        await runner.cleanup()


def _report(ready_fd: int, line: str) -> bool:
    """Tell the supervisor; False when it is gone (killed while this worker started): nothing to serve for."""
    try:
        os.write(ready_fd, f"{line}\n".encode())
    except BrokenPipeError:
        return False
    finally:
        os.close(ready_fd)
    return True


async def _parent_gone(parent: int) -> None:
    """Returns when the supervisor is gone (killed without ending its workers): a worker never outlives it."""
    while os.getppid() == parent:  # noqa: ASYNC110 - no event to wait on: the kernel re-parents us silently
        await asyncio.sleep(1.0)


def main() -> None:
    """A worker: the config (JSON) on stdin; arguments: the worker index and the readiness pipe's fd."""
    config = msgspec.json.decode(sys.stdin.buffer.read(), type=GatewayConfig)
    sys.exit(runtime.run(_run_worker(config, int(sys.argv[1]), int(sys.argv[2]))))


if __name__ == "__main__":
    main()
