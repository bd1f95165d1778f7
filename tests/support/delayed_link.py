"""A slow network on loopback: a TCP relay that delivers every byte ``delay_s`` late, both ways.

A replica on loopback is microseconds behind its primary, so a failover there loses (almost) nothing
whatever ``BROKER_MIN_REPLICAS`` says. Put this relay between a replica and its primary and the
replica is ``delay_s`` behind, as over a real network. When the link's far end dies (the primary is
SIGKILLed), what the relay holds is dropped with it, as the packets in flight of a lost machine are.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from storefront_jobs.embedded import free_port

_CHUNK_BYTES = 65_536


class DelayedLink:
    """Listens on ``port`` and relays each connection to ``127.0.0.1:target_port``, ``delay_s`` late."""

    def __init__(self, target_port: int, delay_s: float) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="delayed-link", daemon=True)

    def start(self) -> DelayedLink:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the delayed link did not start listening")
        return self

    def close(self) -> None:
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self._ready.set()
        async with server:
            await self._stopped.wait()

    async def _relay(self, near_reader: asyncio.StreamReader, near_writer: asyncio.StreamWriter) -> None:
        try:
            far_reader, far_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            near_writer.close()
            return
        directions = [
            asyncio.create_task(self._direction(near_reader, far_writer)),
            asyncio.create_task(self._direction(far_reader, near_writer)),
        ]
        # Either end closing takes the link down, and with it whatever it has not delivered yet.
        _done, pending = await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for writer in (near_writer, far_writer):
            writer.close()

    async def _direction(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Bytes read now are written ``delay_s`` from now, in order, until the reader's end closes."""
        loop = asyncio.get_running_loop()
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due_s, chunk = await held.get()
                await asyncio.sleep(max(0.0, due_s - loop.time()))
                writer.write(chunk)
                await writer.drain()

        delivering = asyncio.create_task(deliver())
        try:
            while chunk := await reader.read(_CHUNK_BYTES):
                held.put_nowait((loop.time() + self.delay_s, chunk))
        except (ConnectionError, OSError):
            pass
        finally:
            delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await delivering
