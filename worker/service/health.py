"""Readiness and the worker's HTTP endpoints: ``/healthz``, ``/readyz`` and ``/metrics``.

``Readiness`` is the set of reasons the worker cannot make progress right now
(empty means ready). The server is a few lines of asyncio: three GET routes
need no web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Mapping

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.errors import ConfigError
from worker.service.metrics import Metrics

log = structlog.get_logger(__name__)
MAX_REQUEST_BYTES = 8192
READ_TIMEOUT_S = 5.0


class Readiness:
    """Stages add a reason when they cannot make progress and remove it when they can."""

    STARTING = "starting"
    NO_ASSIGNMENT = "no_partitions_assigned"
    DATABASE = "database_unavailable"
    BROKER = "broker_unavailable"
    CONSUMER_STUCK = "consumer_out_of_group"  # too long; a new consumer is joining
    TOPIC_MISSING = "topic_missing"  # KAFKA_ACTION_TOPIC or KAFKA_AUDIT_TOPIC does not exist
    STOPPING = "stopping"
    STALLED = "stalled"  # events waiting, no stored progress for STALL_TIMEOUT_S
    PARTITION_BLOCKED = "partition_blocked"  # a record batch that cannot be decoded
    OFFSET_OUT_OF_RANGE = "offset_out_of_range"  # OFFSET_RESET_POLICY=fail

    def __init__(self) -> None:
        self._reasons: set[str] = {self.STARTING}
        # What a reason is about, where it names things (partitions at offsets).
        self._details: dict[str, list[str]] = {}

    @property
    def ready(self) -> bool:
        return not self._reasons

    @property
    def reasons(self) -> list[str]:
        return sorted(self._reasons)

    def fail(self, reason: str) -> None:
        self._reasons.add(reason)

    def clear(self, reason: str) -> None:
        self._reasons.discard(reason)
        self._details.pop(reason, None)

    def detail(self, reason: str, items: list[str]) -> None:
        """Fail for ``reason`` naming ``items``; clear it when there are none."""
        if items:
            self.fail(reason)
            self._details[reason] = sorted(items)
        else:
            self.clear(reason)

    @property
    def details(self) -> dict[str, list[str]]:
        return dict(self._details)


def note_topics(readiness: Readiness, wanted: Mapping[str, str], found: Collection[str]) -> None:
    """Not ready (``topic_missing``) while a topic of ``wanted`` (setting: name) is not found.

    The worker waits instead of exiting: a deploy step may create the topics after it
    starts, and its subscription picks them up once they exist. Logged on each change.
    """
    missing = {setting: topic for setting, topic in wanted.items() if topic not in found}
    if missing and Readiness.TOPIC_MISSING not in readiness.reasons:
        for setting, topic in missing.items():
            log.warning("topic_missing", topic=topic, setting=setting)
        readiness.fail(Readiness.TOPIC_MISSING)
    elif not missing and Readiness.TOPIC_MISSING in readiness.reasons:
        log.info("topics_found", topics=sorted(wanted.values()))
        readiness.clear(Readiness.TOPIC_MISSING)


class HealthServer:
    """Serves the three endpoints on 0.0.0.0 (or the given host) and ``port``."""

    def __init__(
        self,
        readiness: Readiness,
        metrics: Metrics,
        host: str,
        port: int,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self._readiness = readiness
        self._metrics = metrics
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None
        # A handler bug is not a bad request: the supervisor ends the process with it.
        self._on_error = on_error

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen; a port in use (or any bind error) is a configuration error naming HTTP_PORT."""
        try:
            self._server = await asyncio.start_server(self._handle, self._host, self._port)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConfigError(
                f"HTTP_PORT: cannot listen on {self._host}:{self._port} ({reason}); "
                "set HTTP_PORT (or HTTP_HOST) to a free port on this host"
            ) from None

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                request = await reader.readuntil(b"\r\n\r\n")
            status, content_type, body = self._route(request[:MAX_REQUEST_BYTES])
            head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            await _send(writer, head.encode() + body)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that cannot send a request gets nothing
        except Exception as exc:
            if self._on_error is None:
                raise
            self._on_error("health_server", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _route(self, request: bytes) -> tuple[str, str, bytes]:
        method, _, rest = request.partition(b" ")
        path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
        if method != b"GET":
            return "405 Method Not Allowed", "text/plain", b"only GET\n"
        if path == b"/healthz":
            return "200 OK", "application/json", b'{"status":"ok"}'
        if path == b"/readyz":
            return self._ready()
        if path == b"/metrics":
            self._metrics.ready.set(1 if self._readiness.ready else 0)
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry)
        return "404 Not Found", "text/plain", b"not found\n"

    def _ready(self) -> tuple[str, str, bytes]:
        readiness = self._readiness
        answer = {"ready": readiness.ready, "reasons": readiness.reasons}
        body = orjson.dumps(answer | ({"details": readiness.details} if readiness.details else {}))
        status = "200 OK" if self._readiness.ready else "503 Service Unavailable"
        return status, "application/json", body


async def _send(writer: asyncio.StreamWriter, response: bytes) -> None:
    """Answer; a client gone meanwhile is no error of ours (uvloop says RuntimeError)."""
    with contextlib.suppress(OSError, RuntimeError):
        writer.write(response)
        await writer.drain()
