"""A TCP proxy that makes loopback behave like a network profile (benchmark infrastructure).

    with LinkEmulator("tcp://127.0.0.1:5555", load_network_profile("wifi")) as link:
        client = Client(link.endpoint)        # ~40 ms RTT, 80 Mbit/s, jitter, rare loss

Every byte stream through it is delayed the way ``configs/network/<name>.yaml``
describes a link: half the round trip each way with Gaussian jitter
(``rtt_jitter_ms``), serialization at ``uplink_mbps`` towards the server and
``downlink_mbps`` back (a stream's chunks queue behind each other, as on one
radio), and with probability ``loss_rate`` a chunk waits one TCP
retransmission timeout more (200 ms, Linux's minimum RTO): loss on TCP shows
as delay, never as a missing message. Order within a stream is kept. It works
at the TCP level, so any ZeroMQ peer (the Python client, the native binary)
goes through it unchanged, ZMTP handshakes and heartbeats included.

No root and no ``tc netem``: the machine is shared, and the emulation must
touch nothing but the benchmark's own connections.
"""
from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass

__all__ = ["LinkEmulator", "LinkModel", "TCP_MIN_RTO_MS"]

#: Linux's minimum TCP retransmission timeout (ms): what a lost segment costs.
TCP_MIN_RTO_MS = 200.0
_CHUNK = 65536


@dataclass(frozen=True)
class LinkModel:
    """The numbers of a link (from a ``shared.profiles`` network profile)."""

    rtt_ms: float
    rtt_jitter_ms: float
    uplink_mbps: float
    downlink_mbps: float
    loss_rate: float

    @classmethod
    def from_profile(cls, profile) -> LinkModel:
        return cls(profile.rtt_ms, profile.rtt_jitter_ms, profile.uplink_mbps, profile.downlink_mbps,
                   profile.loss_rate)


class _Direction:
    """One direction of one connection: a serializing radio, then a propagation delay."""

    def __init__(self, model: LinkModel, mbps: float, rng: random.Random) -> None:
        self.model, self.bits_per_s, self.rng = model, mbps * 1e6, rng
        self.link_free = 0.0   # when the radio finishes sending what it already has
        self.last_delivery = 0.0

    def delivery_time(self, n_bytes: int, now: float) -> float:
        start = max(now, self.link_free)
        self.link_free = start + 8 * n_bytes / self.bits_per_s
        one_way_s = max(0.0, self.rng.gauss(self.model.rtt_ms / 2, self.model.rtt_jitter_ms / 2)) / 1000
        if self.rng.random() < self.model.loss_rate:
            one_way_s += TCP_MIN_RTO_MS / 1000
        t = max(self.link_free + one_way_s, self.last_delivery)  # TCP keeps order
        self.last_delivery = t
        return t


class LinkEmulator:
    """Listen on a free loopback port and forward every connection to ``target`` through the model.

    Args:
        target: the server's endpoint, ``tcp://host:port``.
        model: a `LinkModel` or a network profile (``shared.profiles.NetworkProfile``).
        seed: jitter and loss draws.
    """

    def __init__(self, target: str, model, seed: int = 0) -> None:
        if not isinstance(model, LinkModel):
            model = LinkModel.from_profile(model)
        host, port = target.removeprefix("tcp://").rsplit(":", 1)
        self.target = (host, int(port))
        self.model = model
        self.rng = random.Random(seed)
        self.endpoint = ""
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server = None
        self._thread = threading.Thread(target=self._run, name="link-emulator", daemon=True)

    def __enter__(self) -> LinkEmulator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("link emulator did not start")

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._on_client, "127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            # cancel every connection's tasks and wait for them to unwind (their finally blocks await
            # the writer tasks they started), so none is destroyed pending at close
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _on_client(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            c_writer.close()
            return
        up = _Direction(self.model, self.model.uplink_mbps, self.rng)
        down = _Direction(self.model, self.model.downlink_mbps, self.rng)
        await asyncio.gather(self._pipe(c_reader, s_writer, up), self._pipe(s_reader, c_writer, down),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Direction) -> None:
        """Read chunks as they come; a second task writes each at its delivery time, in order."""
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                item = await queue.get()
                if item is None:
                    break
                due, data = item
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(_CHUNK):
                queue.put_nowait((link.delivery_time(len(data), time.monotonic()), data))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait(None)  # the peer closed: close the other side after what is queued
            try:
                await sender
            except (ConnectionError, OSError):
                pass
