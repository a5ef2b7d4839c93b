"""A TCP proxy on loopback that a test can cut and restore: the database "goes away" for the
service behind it while the real server keeps running for everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

Outage = Literal["refuse", "hang"]


class TcpProxy:
    """Forwards 127.0.0.1:port to a target. `cut("refuse")` closes every connection and
    every new one at once; `cut("hang")` stops forwarding bytes and leaves connections open,
    as a network that drops packets does. `restore()` forwards again (new connections)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.outage: Outage | None = None
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        ).result(timeout=5)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def shut() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def cut(self, outage: Outage) -> None:
        self.outage = outage
        if outage == "refuse":

            async def close_all() -> None:
                for writer in list(self._writers):
                    writer.close()

            asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(timeout=5)

    def restore(self) -> None:
        self.outage = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.outage == "refuse":
                return
            if self.outage == "hang":
                await reader.read()  # accept, then never answer
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._writers.discard(up_writer)
                up_writer.close()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                # Hold the bytes while the line hangs (a flag another thread sets).
                while self.outage == "hang":  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                if self.outage == "refuse":
                    break
                writer.write(data)
                await writer.drain()
        writer.close()


@contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
