"""Running the server: one uvicorn worker in this process, or a supervisor and N spawned workers.

SIGTERM (or Ctrl+C): stop accepting, let the requests in flight finish, close the guard (the audit trail's
last signed checkpoint), exit 0, all within 10 s. SIGHUP: reload ``--rules`` in every worker.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from types import FrameType
from typing import Any, Final

import uvicorn
from prometheus_client import disable_created_metrics

from .._errors import PayguardError
from .._rules.loader import load_rule_set
from .._stores.url import open_store
from .app import create_app
from .logs import request_logger
from .metrics import MULTIPROC_ENV
from .options import ServeOptions, build_guard, check_options
from .service import Service

__all__ = ["EXIT_INTERNAL", "run"]

EXIT_INTERNAL: Final = 4
GRACE: Final = 7  # seconds the requests in flight get; closing the guard and exiting fit in the rest of 10
STOP_DEADLINE: Final = 9.5  # a supervisor kills a worker that has not exited by then


class _JSONHandler(logging.Handler):
    """uvicorn's own messages (a port in use, a cancelled task) as JSON lines like every other line."""

    def __init__(self, logger: Any) -> None:
        super().__init__(logging.INFO)
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        method = self._logger.error if record.levelno >= logging.ERROR else self._logger.warning
        if record.levelno < logging.WARNING:
            method = self._logger.info
        method("server", message=record.getMessage(), source=record.name)


def _route_uvicorn_logs(logger: Any, level: str) -> None:
    for name in ("uvicorn", "uvicorn.error"):
        target = logging.getLogger(name)
        target.handlers = [_JSONHandler(logger)]
        target.propagate = False
        target.setLevel(logging.WARNING if level in ("info", "debug") else level.upper())


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """uvicorn re-raises the signal that stopped it once it is done: after a clean shutdown it is ignored,
    so the process exits 0."""


def run(options: ServeOptions, *, offload: bool = False) -> int:
    """Serve until SIGTERM; the exit code. ``PayguardError`` for options that cannot run (exit 2)."""
    check_options(options)
    # this process is the server: no ``_created`` series (in multiprocess mode each shows as a gauge family)
    disable_created_metrics()  # type: ignore[no-untyped-call]
    if options.workers > 1:
        return _supervise(options)
    return run_worker(options, None, offload=offload)


def run_worker(options: ServeOptions, sock: socket.socket | None, *, offload: bool = False) -> int:
    """One worker: its guard, its app, uvicorn on ``sock`` (or on host:port)."""
    logger = request_logger(options.log_level)
    _route_uvicorn_logs(logger, options.log_level)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a SIGHUP during start-up must not end the worker
    guard = build_guard(options)
    service = Service(guard, options)

    def reload_on_hangup() -> None:
        reply = service.reload_rules()
        if reply.status == 200:
            logger.info("reloaded", signal="SIGHUP", pid=os.getpid(), **reply.log)
        else:
            logger.error(
                "reload failed: the running rule set stays", signal="SIGHUP", pid=os.getpid(), **reply.log
            )

    def started() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload_on_hangup)

    app = create_app(service, logger, offload=offload, on_startup=started)
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_config=None,
        access_log=False,  # the app writes its own line per request
        timeout_graceful_shutdown=GRACE,
        lifespan="on",
        server_header=False,
    )
    server = uvicorn.Server(config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _ignore)
    ref = guard.ruleset
    logger.info(
        "starting",
        url=f"http://{options.host}:{options.port}",
        worker=options.worker,
        pid=os.getpid(),
        ruleset=f"{ref.id}@{ref.version}",
        digest=ref.digest,
        engine=guard.engine,
        audit=service.audit_path,
    )
    code = 0
    try:
        server.run(sockets=None if sock is None else [sock])
    except SystemExit as exc:  # uvicorn exits 1 when it cannot bind or start
        code = 2 if exc.code else 0
    finally:
        try:
            service.close()
        except PayguardError as exc:
            logger.exception("the audit trail could not be closed", error=str(exc))
            code = EXIT_INTERNAL
    if not server.started and code == 0:
        code = 2
    logger.info("stopped", worker=options.worker, pid=os.getpid(), exit_code=code)
    return code


def _worker_main(options: ServeOptions, sock: socket.socket) -> None:
    try:
        code = run_worker(options, sock)
    except PayguardError as exc:  # its guard could not be built (its audit file locked, the store gone)
        request_logger(options.log_level).exception(
            "worker could not start", worker=options.worker, error=str(exc)
        )
        code = 2
    sys.exit(code)


def _supervise(options: ServeOptions) -> int:
    """Bind the port once, spawn the workers on it, relay SIGTERM and SIGHUP, and wait for them."""
    logger = request_logger(options.log_level)
    load_rule_set(options.rules)  # fail here, once, rather than in every worker
    open_store(options.store).close()
    _route_uvicorn_logs(logger, options.log_level)
    config = uvicorn.Config(app="payguard:unused", host=options.host, port=options.port, log_config=None)
    try:
        sock = config.bind_socket()  # before the workers start: they share this one listening socket
    except SystemExit:  # uvicorn logged why (the address in use): the options cannot run
        raise PayguardError(f"cannot listen on {options.host}:{options.port}") from None
    metrics_dir = tempfile.mkdtemp(prefix="payguard-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # inherited by the workers: one view of the metrics
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker_main, args=(options.for_worker(n), sock), name=f"payguard-worker-{n}")
        for n in range(1, options.workers + 1)
    ]
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    def hangup(_signum: int, _frame: FrameType | None) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hangup)
    for worker in workers:
        worker.start()
    logger.info(
        "supervising",
        url=f"http://{options.host}:{options.port}",
        pid=os.getpid(),
        workers=[worker.pid for worker in workers],
    )
    code = 0
    try:
        while not stopping:
            died = [worker for worker in workers if not worker.is_alive()]
            if (
                died
            ):  # a worker that stops on its own leaves the server short: stop, let the orchestrator restart
                for worker in died:
                    logger.error("worker exited", pid=worker.pid, exit_code=worker.exitcode)
                code = EXIT_INTERNAL
                break
            time.sleep(0.1)
        code = _stop_workers(workers, logger) or code
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    logger.info("stopped", pid=os.getpid(), exit_code=code)
    return code


def _stop_workers(workers: list[Any], logger: Any) -> int:
    """SIGTERM to every worker, then wait; a worker still running at the deadline is killed (exit 4)."""
    for worker in workers:
        if worker.is_alive():
            os.kill(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE
    code = 0
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            logger.error("worker did not stop in time: killed", pid=worker.pid)
            worker.kill()
            worker.join()
            code = EXIT_INTERNAL
        elif worker.exitcode not in (0, None) and code == 0:
            code = EXIT_INTERNAL
    return code
