"""Device and network profiles: every shipped file validates; the energy arithmetic adds up."""
import math

import pytest
import yaml

from shared.profiles import (EnergyMeter, ProfileError, available_profiles, inference_mj, load_device_profile,
                             load_network_profile)


@pytest.mark.parametrize("name", available_profiles("device"))
def test_device_profiles_validate_and_cite(name):
    dev = load_device_profile(name)
    assert dev.battery_mj > 0 and dev.sources
    for q in dev.sources.values():
        assert q.source.strip()


@pytest.mark.parametrize("name", available_profiles("network"))
def test_network_profiles_validate_and_cite(name):
    net = load_network_profile(name)
    assert net.uplink_mbps > 0 and len(net.sources) == 13


def test_shipped_profiles_are_there():
    assert "glasses_2025" in available_profiles("device")
    assert {"wifi", "bluetooth", "lte"} <= set(available_profiles("network"))
    dev = load_device_profile()
    assert dev.battery_wh == 0.96 and not dev.sources["battery_wh"].estimate
    assert dev.sources["camera_mw"].estimate


def test_bad_profiles_name_file_and_field(tmp_path):
    good = yaml.safe_load(open(load_device_profile.__globals__["profile_path"]("device", "glasses_2025")))
    with pytest.raises(ProfileError, match="no such profile"):
        load_device_profile("glasses_1990")
    bad = dict(good, camera_mw={"value": "lots", "unit": "mW", "source": "estimate: guess"})
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ProfileError, match=r"bad.yaml: camera_mw.value: expected a finite number"):
        load_device_profile(p)
    bad = dict(good, camera_mw={"value": 250.0, "unit": "W", "source": "estimate: guess"})
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ProfileError, match=r"camera_mw.unit: expected 'mW'"):
        load_device_profile(p)
    bad = dict(good, camera_mw={"value": 250.0, "unit": "mW", "source": ""})
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ProfileError, match=r"camera_mw.source"):
        load_device_profile(p)
    bad = {k: v for k, v in good.items() if k != "battery_wh"}
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ProfileError, match="battery_wh: missing"):
        load_device_profile(p)
    p.write_text("camera_mw: [1, 2")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_device_profile(p)


def test_energy_meter_arithmetic():
    dev, net = load_device_profile(), load_network_profile("wifi")
    m = EnergyMeter(dev, net)
    idle = m.step(0.25, camera_on=False)
    assert idle.total == pytest.approx((dev.baseline_mw + dev.audio_dsp_mw) * 0.25)
    on = m.step(0.25, camera_on=True)  # off -> on pays the wake-up once
    assert on.camera == pytest.approx(dev.camera_mw * 0.25 + dev.camera_wake_mj)
    assert m.step(0.25, camera_on=True).camera == pytest.approx(dev.camera_mw * 0.25)
    tx = m.step(0.25, camera_on=False, tx_bytes=10_000, rx_bytes=1_000, jpeg_frames=2)
    air = 80_000 / (net.uplink_mbps * 1e6) + 8_000 / (net.downlink_mbps * 1e6)  # 1.1 ms at 80 Mbit/s
    assert tx.radio == pytest.approx((80_000 * net.tx_nj_per_bit + 8_000 * net.rx_nj_per_bit) * 1e-6
                                     + net.active_mw * air)
    assert tx.jpeg == pytest.approx(2 * dev.jpeg_mj_per_frame)
    # Per-transfer tail: 238.1 ms of it after the airtime; the transfer's own step (0.25 - air s left)
    # holds all of it, so the next steps pay nothing.
    assert tx.tail == pytest.approx(net.tail_mw * net.tail_ms / 1000) and net.tail_ms / 1000 < 0.25 - air
    tails = [m.step(0.25, camera_on=False).tail for _ in range(3)]
    assert tails == [0.0, 0.0, 0.0]
    lte = EnergyMeter(dev, load_network_profile("lte"))  # 11.6 s of tail: 0.25 - air now, then 0.25 s per step
    first = lte.step(0.25, camera_on=False, tx_bytes=10_000, airtime_s=0.05)
    assert first.tail == pytest.approx(1060.0 * 0.2)
    rest = [lte.step(0.25, camera_on=False).tail for _ in range(48)]
    assert rest[:45] == pytest.approx([1060.0 * 0.25] * 45) and sum(rest) == pytest.approx(1060.0 * (11.576 - 0.2))
    assert m.total_mj == pytest.approx(idle.total + on.total + dev.camera_mw * 0.25 + (
        dev.baseline_mw + dev.audio_dsp_mw) * 0.25 * 5 + tx.radio + tx.jpeg + tx.tail + tails[0])
    assert 0 < m.battery_frac < 1 and m.elapsed_s == pytest.approx(1.75)


def test_a_stream_of_transfers_pays_the_tail_between_them():
    # Sending every step keeps the radio in its tail between transfers: the step pays it (the old model
    # charged no tail at all to a continuous stream).
    dev, net = load_device_profile(), load_network_profile("wifi")
    m = EnergyMeter(dev, net)
    steps = [m.step(0.25, camera_on=False, tx_bytes=184_000, airtime_s=0.02) for _ in range(4)]
    assert all(s.tail == pytest.approx(net.tail_mw * 0.23) for s in steps)
    assert all(s.radio == pytest.approx(184_000 * 8 * net.tx_nj_per_bit * 1e-6 + net.active_mw * 0.02) for s in steps)


def test_idle_is_many_empty_steps_in_one_call():
    dev, net = load_device_profile(), load_network_profile("lte")
    a, b = EnergyMeter(dev, net), EnergyMeter(dev, net)
    for m in (a, b):
        m.step(0.25, camera_on=True, tx_bytes=50_000)
    e = a.idle(60.0, compute_mw=2.0)
    steps = [b.step(0.25, camera_on=False, compute_mj=2.0 * 0.25) for _ in range(240)]
    assert e == pytest.approx(sum(s.total for s in steps), rel=1e-9)
    assert a.total_mj == pytest.approx(b.total_mj) and a.elapsed_s == pytest.approx(b.elapsed_s)
    assert a.avg_power_mw == pytest.approx(b.avg_power_mw, rel=0.05)  # one relaxation vs 240 small ones


def test_lte_follows_its_cited_source():
    # Huang et al., MobiSys 2012: alpha_u 438.39 and alpha_d 51.97 mW per Mbit/s (= nJ/bit), beta 1288.04 mW,
    # tail 11.576 s at 1060 mW. Every value that cites the paper must be the paper's number.
    lte = load_network_profile("lte")
    assert (lte.tx_nj_per_bit, lte.rx_nj_per_bit, lte.active_mw) == (438.39, 51.97, 1288.04)
    assert (lte.tail_ms, lte.tail_mw) == (11576.0, 1060.0)
    for name in ("wifi", "lte", "bluetooth"):
        net = load_network_profile(name)
        for key, q in net.sources.items():
            assert q.estimate or "Huang" in q.source or "ARCHITECTURE" in q.source, (name, key, q.source)


def test_compute_energy_and_power_cap():
    dev = load_device_profile()
    assert inference_mj(dev, 1_000_000, "int8") == pytest.approx(1e6 * dev.npu_pj_per_mac * 1e-9)
    assert inference_mj(dev, 1_000_000, "fp32", 1000) > inference_mj(dev, 1_000_000, "int8", 1000)
    with pytest.raises(ValueError, match="precision"):
        inference_mj(dev, 1, "int4")
    m = EnergyMeter(dev, load_network_profile("lte"))
    for _ in range(400):  # 100 s of camera + a large upload every step: over the 1 W cap
        m.step(0.25, camera_on=True, tx_bytes=2_000_000)
    assert m.over_cap and m.avg_power_mw > dev.sustained_power_mw
    assert dev.battery_life_h(160.0) == pytest.approx(6.0) and math.isinf(dev.battery_life_h(0))
