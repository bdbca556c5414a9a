"""pipelines/link_emulator.py: the loopback link emulator adds the profile's round trip and serialization, keeps order."""
from __future__ import annotations

import time

import pytest
import zmq

from pipelines.link_emulator import LinkEmulator, LinkModel

pytestmark = pytest.mark.slow  # real sockets through the emulated link, with its delays


def _echo_pair(model: LinkModel):
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    link = LinkEmulator(f"tcp://127.0.0.1:{port}", model, seed=1)
    link.start()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = router.linger = 0
    dealer.connect(link.endpoint)
    return ctx, router, dealer, link


def _round_trips(router, dealer, payloads: list[bytes]) -> list[float]:
    out = []
    for data in payloads:
        t0 = time.monotonic()
        dealer.send(data)
        assert router.poll(5000)
        rid, got = router.recv_multipart()
        assert got == data
        router.send_multipart([rid, b"ok"])
        assert dealer.poll(5000) and dealer.recv() == b"ok"
        out.append(1000 * (time.monotonic() - t0))
    return out


def test_round_trip_and_bandwidth_follow_the_model():
    model = LinkModel(rtt_ms=60.0, rtt_jitter_ms=0.0, uplink_mbps=8.0, downlink_mbps=8.0, loss_rate=0.0)
    ctx, router, dealer, link = _echo_pair(model)
    try:
        small = _round_trips(router, dealer, [b"x"] * 5)
        big = _round_trips(router, dealer, [bytes(100_000)] * 3)  # 0.8 Mbit at 8 Mbit/s: +100 ms
    finally:
        dealer.close()
        router.close()
        ctx.term()
        link.close()
    assert 55 <= min(small) and sorted(small)[2] < 60 + 40, small
    assert 150 <= min(big) < 160 + 80, big
    assert link.connections == 1


def test_loss_shows_as_a_retransmission_delay_and_order_is_kept():
    model = LinkModel(rtt_ms=10.0, rtt_jitter_ms=4.0, uplink_mbps=100.0, downlink_mbps=100.0, loss_rate=0.5)
    ctx, router, dealer, link = _echo_pair(model)
    try:
        for i in range(50):
            dealer.send(str(i).encode())
        got = []
        while len(got) < 50 and router.poll(3000):
            got.append(int(router.recv_multipart()[1]))
        rtts = _round_trips(router, dealer, [b"y"] * 12)
    finally:
        dealer.close()
        router.close()
        ctx.term()
        link.close()
    assert got == list(range(50))  # TCP order survives jitter and "loss"
    assert max(rtts) >= 200 and min(rtts) < 100, rtts  # some chunks waited one RTO, some did not
