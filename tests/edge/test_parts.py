"""The runtime's small parts: ring buffer, SNR estimate, local answers, event log,
JPEG, program loading and config validation."""
from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from edge.eventlog import EventLog, read_events
from edge.jpeg import encode_jpeg
from edge.local_answer import LocalMemory, answer_locally, labels_named, query_kind
from edge.snr import estimate_snr_db
from edge.source import AudioRing
from shared.config import CONFIG_DIR, ConfigError, to_schema


def test_ring_keeps_the_newest_samples_in_order():
    ring = AudioRing(10)
    assert ring.last(4).tolist() == [0, 0, 0, 0]
    ring.push(np.arange(1, 8, dtype=np.int16))
    assert ring.last(5).tolist() == [3, 4, 5, 6, 7]
    ring.push(np.arange(8, 14, dtype=np.int16))  # wraps
    assert ring.last(10).tolist() == list(range(4, 14))
    ring.push(np.arange(100, 125, dtype=np.int16))  # longer than the ring
    assert ring.last(3).tolist() == [122, 123, 124] and ring.written == 13 + 25
    with pytest.raises(ValueError):
        ring.last(11)


def test_snr_estimate_orders_quiet_and_noisy_audio():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    tone = np.where(t > 0.5, 0.3 * np.sin(2 * np.pi * 1000 * t), 0.0)
    quiet = ((tone + 0.001 * rng.standard_normal(16000)) * 32767).astype(np.int16)
    noisy = ((tone + 0.2 * rng.standard_normal(16000)) * 32767).astype(np.int16)
    assert estimate_snr_db(quiet, 16000) > 30 > estimate_snr_db(noisy, 16000)
    assert estimate_snr_db(np.zeros(16000, np.int16), 16000) <= 0


def test_local_answers_from_memory():
    assert query_kind("why did I stop chopping?") == "why_stop" and query_kind("what was that sound?") == "sound_id"
    assert labels_named("which came first, the notification or the dishes?") == ["phone_notification", "dishes"]
    assert labels_named("did the microwave beep?") == ["microwave_beep"]
    mem = LocalMemory()
    assert answer_locally(mem, "what was that sound?", 5.0) == "unknown"
    mem.add(1.0, "dishes", 0.9, "trigger")
    mem.add(3.0, "phone_notification", 0.8, "trigger")
    mem.add(3.0, "open_oven", 0.9, "student")  # not a sound: ignored
    assert answer_locally(mem, "which came first, the notification or the dishes?", 5.0) == "dishes"
    assert answer_locally(mem, "why did I pick up the phone?", 5.0) == "phone_notification"
    assert answer_locally(mem, "what was that sound?", 2.0) == "dishes"  # only what was heard by then
    assert answer_locally(mem, "did I get a notification?", 5.0) == "yes"
    assert answer_locally(mem, "did someone knock?", 5.0) == "no"


def test_event_log_schema_is_enforced(tmp_path):
    with EventLog(tmp_path / "e.jsonl") as log:
        log.write("camera", 0.25, 1.23456789, on=True)
        with pytest.raises(ValueError, match="expected keys"):
            log.write("camera", 0.5, 2.0, on=True, extra=1)
        with pytest.raises(ValueError, match="unknown event kind"):
            log.write("nope", 0.5, 2.0)
    (e,) = read_events(tmp_path / "e.jsonl")
    assert list(e) == ["v", "seq", "t_s", "kind", "energy_mj", "on"] and e["energy_mj"] == 1.23457


def test_jpeg_quality_changes_size():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    hi, lo = encode_jpeg(img, 90), encode_jpeg(img, 30)
    assert hi[:2] == lo[:2] == b"\xff\xd8" and len(hi) > len(lo)


def test_a_corrupt_program_fails_naming_the_file(programs, tmp_path):
    from edge.programs import ProgramError, load_program

    trig = load_program(programs["trigger"], expect="trigger")
    probs = trig(np.zeros((1, 16000), np.int16))[0]
    assert probs.shape == (1, 18) and trig.last_ms > 0
    with pytest.raises(ProgramError, match="expected 'av'"):
        load_program(programs["trigger"], expect="av")
    bad = tmp_path / programs["trigger"].name
    data = bytearray(programs["trigger"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    bad.with_suffix(".json").write_text(programs["trigger"].with_suffix(".json").read_text())
    with pytest.raises(ProgramError, match=str(bad).replace(".", r"\.") + ".*sha256"):
        load_program(bad)


def _edge_config(overrides):
    import edge.verbs  # noqa: F401  (registers the schema)
    from edge.edge_config import EdgeConfig

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_schema(compose(config_name="edge", overrides=overrides), EdgeConfig)


@pytest.mark.parametrize("override, key", [
    ("hop_s=0", "hop_s"), ("deadline_ms=0", "deadline_ms"), ("policy=nope", "policy"),
    ("+policy_params.hold_z=1", "policy_params"), ("device.camera_mw.value=-1", "device"),
    ("endpoint=http://x", "endpoint"), ("max_in_flight=0", "max_in_flight"), ("recording=/no/such", "recording"),
])
def test_bad_config_values_name_the_key(edge_world, programs, override, key):
    base = [f"recording={edge_world[0]}", f"trigger={programs['trigger']}", f"student={programs['student']}"]
    cfg = _edge_config(base)
    assert cfg.hop_s == 0.25 and cfg.policy == "audio_trigger"
    with pytest.raises(ConfigError, match=f"^{key}: "):
        _edge_config([*base, override])
