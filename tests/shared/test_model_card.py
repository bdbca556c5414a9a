"""shared/model_card.py: the card schema the edge runtimes read (no torch needed)."""
import copy
import dataclasses
import json
import subprocess
import sys

import pytest

from shared.model_card import (
    ModelCard,
    ModelCardError,
    card_path_for,
    copy_with_card,
    file_sha256,
    load_model_card,
    save_model_card,
)

LABELS = ["speech", "timer_beep"]


def _card(tmp_path, **changes) -> dict:
    program = tmp_path / "trigger_xnnpack_int8.pte"
    program.write_bytes(b"program bytes")
    card = {
        "card_version": 1,
        "name": "trigger",
        "program": program.name,
        "format": "pte",
        "backend": "xnnpack",
        "precision": "int8",
        "size_bytes": program.stat().st_size,
        "sha256": file_sha256(program),
        "inputs": [{"name": "pcm", "dtype": "int16", "shape": [1, 16000], "description": "1 s of PCM"}],
        "outputs": [{"name": "event_probs", "dtype": "float32", "shape": [1, 2], "description": ""}],
        "labels": list(LABELS),
        "thresholds": {"speech": 0.4, "timer_beep": 0.65},
        "threshold_rule": "F1-max on val",
        "features": {"sample_rate_hz": 16000, "window_ms": 16.0, "hop_ms": 20.0, "n_fft": 256, "n_mels": 32,
                     "fmin_hz": 125.0, "fmax_hz": 7500.0, "log_offset": 0.001, "trim_bins": True},
        "audio_window_s": 1.0,
        "frame_size_px": None,
        "num_parameters": 32402,
        "macs": 4279360,
        "metrics": {"macro_f1": 0.8, "teacher_macro_f1": 0.82, "retention": 0.97, "agreement_f1": 0.9,
                    "n_windows": 100, "split": "test"},
        "teacher": {"num_parameters": 1000000},
        "taxonomy_version": 1,
        "extra": {},
    }
    card.update(changes)
    return card


def test_round_trip_and_use(tmp_path):
    card = ModelCard.from_dict(_card(tmp_path))
    path = save_model_card(card, card_path_for(tmp_path / card.program))
    assert path.name == "trigger_xnnpack_int8.json"
    again = load_model_card(path, check_program=True)
    assert again == card and again.to_dict() == json.loads(path.read_text())
    assert again.threshold_vector() == [0.4, 0.65]
    assert again.decide([0.5, 0.6]) == ["speech"]
    off = dataclasses.replace(again, thresholds={lab: 1.0 for lab in again.labels})
    assert off.decide([1.0, 1.0]) == []  # 1 turns a label off, even at an int8 score of exactly 1.0
    assert again.feature_config().n_mels == 32
    assert "early_thresholds" not in again.to_dict() and again.early_hold() is None  # no early stage: as before


def test_an_early_stage_round_trips_and_holds_like_the_trigger(tmp_path):
    card = ModelCard.from_dict(_card(tmp_path, early_thresholds={"speech": 0.2, "timer_beep": 0.65}))
    path = save_model_card(card, card_path_for(tmp_path / card.program))
    again = load_model_card(path)
    assert again.early_thresholds == {"speech": 0.2, "timer_beep": 0.65}
    hold = again.early_hold()
    assert hold.refractory_s == again.refractory_s and list(hold.thresholds) == [0.2, 0.65]
    assert hold.step(0.25, [0.3, 0.1]) == (["speech"], ["speech"])  # over 0.2, under the trigger's own 0.4
    assert again.early_threshold_vector() == [0.2, 0.65]
    assert dataclasses.replace(again, early_thresholds=None).early_threshold_vector() is None


def test_copy_with_card_keeps_the_program_and_writes_the_new_card(tmp_path):
    card = ModelCard.from_dict(_card(tmp_path))
    edited = dataclasses.replace(card, thresholds={"speech": 0.9, "timer_beep": 0.9})
    out = copy_with_card(tmp_path / card.program, tmp_path / "copy", edited)
    assert out == tmp_path / "copy" / card.program and out.read_bytes() == b"program bytes"
    assert load_model_card(card_path_for(out), check_program=True).thresholds == {"speech": 0.9, "timer_beep": 0.9}
    with pytest.raises(ModelCardError, match="thresholds.speech"):  # the card is validated before it is written
        copy_with_card(tmp_path / card.program, tmp_path / "bad", dataclasses.replace(card, thresholds={"speech": 2.0, "timer_beep": 0.5}))
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda c: c.update(card_version=2), "card_version"),
        (lambda c: c.update(format="onnx"), "format"),
        (lambda c: c.update(backend="coreml"), "backend"),
        (lambda c: c.update(precision="int4"), "precision"),
        (lambda c: c.update(program="sub/x.pte"), "program"),
        (lambda c: c.update(format="tflite", backend="litert"), "program"),  # .pte file, tflite format
        (lambda c: c.update(size_bytes=0), "size_bytes"),
        (lambda c: c.update(sha256="xyz"), "sha256"),
        (lambda c: c.update(macs=-1), "macs"),
        (lambda c: c["inputs"][0].update(dtype="float64"), r"inputs\[0\].dtype"),
        (lambda c: c["inputs"][0].update(shape=[1, 0]), r"inputs\[0\].shape"),
        (lambda c: c["outputs"][0].update(shape=[1, 3]), "outputs"),
        (lambda c: c.update(labels=["speech", "speech"]), "labels"),
        (lambda c: c["thresholds"].pop("timer_beep"), "thresholds.timer_beep"),
        (lambda c: c["thresholds"].update(speech=1.5), "thresholds.speech"),
        (lambda c: c["thresholds"].update(bark=0.5), "thresholds.bark"),
        (lambda c: c["features"].pop("hop_ms"), "features.hop_ms"),
        (lambda c: c["features"].update(trim_bins="yes"), "features.trim_bins"),
        (lambda c: c.update(audio_window_s=0), "audio_window_s"),
        (lambda c: c.update(frame_size_px=-64), "frame_size_px"),
        (lambda c: c["metrics"].pop("retention"), "metrics.retention"),
        (lambda c: c["metrics"].update(per_label=[1, 2]), "metrics.per_label"),
        (lambda c: c["metrics"].update(macro_f1=float("nan")), "metrics.macro_f1"),
        (lambda c: c.pop("labels"), "labels"),
        (lambda c: c.update(colour="red"), "colour"),
        (lambda c: c.update(early_thresholds={"speech": 0.2}), "early_thresholds.timer_beep"),
        (lambda c: c.update(early_thresholds={"speech": 0.5, "timer_beep": 0.3}), "early_thresholds.speech"),
        (lambda c: c.update(early_thresholds={"speech": 0.2, "timer_beep": -0.1}), "early_thresholds.timer_beep"),
        (lambda c: c.update(early_thresholds=[0.2, 0.3]), "early_thresholds"),
    ],
)
def test_every_error_names_the_field(tmp_path, mutate, field):
    data = copy.deepcopy(_card(tmp_path))
    mutate(data)
    with pytest.raises(ModelCardError, match=f"^{field}:"):
        ModelCard.from_dict(data)
    path = tmp_path / "card.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelCardError, match=f"card.json: {field}:"):
        load_model_card(path)


def test_program_checks_catch_a_swapped_or_missing_program(tmp_path):
    card = ModelCard.from_dict(_card(tmp_path))
    assert card.check_program(tmp_path) == tmp_path / card.program
    (tmp_path / card.program).write_bytes(b"program byteZ")  # same size, other content
    with pytest.raises(ModelCardError, match="^sha256:"):
        card.check_program(tmp_path)
    (tmp_path / card.program).write_bytes(b"short")
    with pytest.raises(ModelCardError, match="^size_bytes:"):
        card.check_program(tmp_path)
    (tmp_path / card.program).unlink()
    with pytest.raises(ModelCardError, match="^program:"):
        card.check_program(tmp_path)


def test_unreadable_cards_name_the_file(tmp_path):
    with pytest.raises(ModelCardError, match="no such model card"):
        load_model_card(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelCardError, match="bad.json: not valid JSON"):
        load_model_card(tmp_path / "bad.json")


def test_reading_a_card_does_not_import_torch():
    # The edge runtime reads cards; it must not pay for (or need) torch to do so.
    code = "import sys, shared.model_card; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
