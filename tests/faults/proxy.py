"""A small TCP proxy on 127.0.0.1 that injects network faults between the worker and a server.

Modes, switched at any time with ``set_mode``:

- ``pass``: forward bytes both ways;
- ``delay``: forward, each chunk held back ``delay_s`` first;
- ``blackhole``: accept connections and read from them, but never answer nor forward
  (existing connections go silent too): what a dead route or a frozen server looks like;
- ``reset``: reset every open connection (TCP RST) and every new one as soon as it arrives;
- ``refuse``: stop listening, so that connecting is refused; open connections are reset.

Leaving ``refuse`` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Literal

Mode = Literal["pass", "delay", "blackhole", "reset", "refuse"]
LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.close()

    def reset(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                _abort(writer)
        for task in self.tasks:
            task.cancel()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Listens on ``port`` (of 127.0.0.1) and forwards to ``upstream_port`` of 127.0.0.1."""

    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self.mode: Mode = "pass"
        self.delay_s = 0.0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, LOOPBACK, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await self._close_server()
        self._reset_all()

    async def set_mode(self, mode: Mode, delay_s: float = 0.0) -> None:
        """Switch mode; resets and refusals apply to connections already open."""
        previous, self.mode, self.delay_s = self.mode, mode, delay_s
        if mode in ("reset", "refuse"):
            self._reset_all()
        if mode == "refuse":
            await self._close_server()
        elif previous == "refuse":
            await self.start()

    @property
    def open_connections(self) -> int:
        return len(self._links)

    async def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _reset_all(self) -> None:
        for link in list(self._links):
            link.reset()
        self._links.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(writer)
        if self.mode in ("reset", "refuse"):
            _abort(writer)
            return
        self._links.add(link)
        try:
            if self.mode == "blackhole":
                await self._swallow(reader)
                return
            try:
                up_reader, link.upstream = await asyncio.open_connection(
                    LOOPBACK, self.upstream_port
                )
            except OSError:
                _abort(writer)
                return
            link.tasks = [
                asyncio.create_task(self._pump(reader, link.upstream)),
                asyncio.create_task(self._pump(up_reader, writer)),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            self._links.discard(link)
            link.close()

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(CHUNK):
            pass

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction until EOF; in black-hole mode drop what arrives."""
        try:
            while data := await reader.read(CHUNK):
                if self.mode == "blackhole":
                    continue
                if self.mode == "delay" and self.delay_s > 0:
                    await asyncio.sleep(self.delay_s)
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.write_eof()
        except (OSError, asyncio.IncompleteReadError):
            pass
