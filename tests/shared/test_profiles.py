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
    assert net.uplink_mbps > 0 and len(net.sources) == 10


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
    assert tx.radio == pytest.approx((80_000 * net.tx_nj_per_bit + 8_000 * net.rx_nj_per_bit) * 1e-6)
    assert tx.tail == 0 and tx.jpeg == pytest.approx(2 * dev.jpeg_mj_per_frame)
    tails = [m.step(0.25, camera_on=False).tail for _ in range(3)]  # 200 ms tail: 0.2 s, then nothing
    assert tails == pytest.approx([net.tail_mw * 0.2, 0.0, 0.0])
    assert m.total_mj == pytest.approx(idle.total + on.total + dev.camera_mw * 0.25 + (
        dev.baseline_mw + dev.audio_dsp_mw) * 0.25 * 5 + tx.radio + tx.jpeg + tails[0])
    assert 0 < m.battery_frac < 1 and m.elapsed_s == pytest.approx(1.75)


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
