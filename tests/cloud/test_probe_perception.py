"""`cloud.eval.sound_presence` and `scripts/probe_perception.py`: "did you hear X?" from the sound head alone."""
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cloud.data import RecordingStore, WindowSpec, load_records
from cloud.data_engine.records import QARecord
from cloud.eval import sound_presence
from cloud.model.config import ModelConfig
from cloud.model.io import save_teacher
from cloud.model.perception import SOUND_LABELS
from cloud.model.teacher import AVTeacher
from cloud.model.tokenizer import Tokenizer
from shared.config import UserError

from tests.helpers.teacher_world import make_world

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import probe_perception  # noqa: E402

torch.set_num_threads(1)
TINY = dict(audio_channels=16, frame_size_px=32, visual_channels=8, d_model=32, n_heads=2, decoder_layers=1,
            gate_hidden=8, dropout=0.0)
SPEC = WindowSpec(audio_history_s=10.0, frame_hz=1.0, max_window_s=10.0, frame_size_px=32)


class Oracle(AVTeacher):
    """Test double: per-token sound logits from the batch's own targets (+-5), or a constant."""

    constant: float | None = None

    def perceive(self, batch):
        out = super().perceive(batch)
        logits = 10.0 * batch["sound"] - 5.0 if self.constant is None else torch.full_like(out["sound_logits"], self.constant)
        return {**out, "sound_logits": logits}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe_world")
    qa = make_world(root, n_recordings=6, seconds=10.0)
    records = load_records(qa, "train_av") + load_records(qa, "val_av")
    # The fixture asks one "did you hear X?" per recording; ask every sound on every recording.
    heard = {r.recording_id: r for r in records if r.category == "AVH"}
    asked = []
    for rid, r in sorted(heard.items()):
        for i, label in enumerate(("timer_beep", "doorbell", "phone_ring")):
            ann = RecordingStore(root / "world", 32, 64).get(rid).annotations
            yes = any(e.label == label for e in ann.events)
            asked.append(dataclasses.replace(r, id=f"{rid}.{i}", question=f"did you hear {label}?",
                                             answer="yes" if yes else "no", meta={**r.meta, "label": label}))
    tok = Tokenizer.build([r.question for r in asked], answers=["yes no"])
    return root, qa, asked, tok


def test_perfect_perception_answers_every_question_and_silence_answers_only_the_nos(world):
    root, _, asked, tok = world
    store = RecordingStore(root / "world", 32, 64)
    model = Oracle(ModelConfig(**TINY), len(tok)).eval()
    recs, logits = sound_presence(model, asked, store, tok, SPEC, batch_size=4)
    gold = np.array([r.answer == "yes" for r in recs])
    assert len(recs) == len(asked) == 18 and 0 < gold.sum() < len(gold)
    np.testing.assert_array_equal(logits > 0, gold)
    model.constant = -3.0
    _, flat = sound_presence(model, asked, store, tok, SPEC)
    assert (flat == -3.0).all() and ((flat > 0) == gold).mean() == pytest.approx(1 - gold.mean())


def test_only_heard_questions_with_a_perception_label_are_probed(world):
    root, _, asked, tok = world
    store = RecordingStore(root / "world", 32, 64)
    model = Oracle(ModelConfig(**TINY), len(tok)).eval()
    other = dataclasses.replace(asked[0], id="x", question="did you hear a_lion?", meta={**asked[0].meta, "label": "a_lion"})
    recs, _ = sound_presence(model, [other, *asked[:3]], store, tok, SPEC)
    assert [r.id for r in recs] == [r.id for r in asked[:3]]
    with pytest.raises(UserError, match="did you hear"):
        sound_presence(model, [other], store, tok, SPEC)


def test_the_auc_it_reports_counts_ties_half():
    assert probe_perception.auroc([3, 2, 1, 0], [1, 1, 0, 0]) == 1.0
    assert probe_perception.auroc([0, 0, 0, 0], [1, 0, 1, 0]) == 0.5
    assert probe_perception.auroc([0, 1], [1, 0]) == 0.0


def test_the_script_probes_two_folders_and_compares_them_on_the_same_pairs(world, tmp_path, capsys):
    root, qa, _, tok = world
    folders = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = AVTeacher(ModelConfig(**TINY), len(tok))
        folders.append(save_teacher(tmp_path / f"t{seed}" / "model", model, tok, {"data": dataclasses.asdict(SPEC)}))
    out = tmp_path / "probe.json"
    # the fixture's own AVH records (one per recording, no pairs) on its val split
    assert probe_perception.main([str(tmp_path / "t0"), str(folders[1]), "--qa-dir", str(qa), "--split", "train_av",
                                  "--json", str(out)]) == 0
    text = capsys.readouterr().out
    rows = json.loads(out.read_text())
    n = sum(1 for r in load_records(qa, "train_av") if r.category == "AVH")
    assert [r["n_records"] for r in rows] == [n, n] and all(0.0 <= r["question"]["value"] <= 1.0 for r in rows)
    assert "did you hear X?" in text and "recall of the 'yes' windows per label" in text
    with pytest.raises(SystemExit, match="no model.safetensors"):
        probe_perception.main([str(tmp_path / "nothing"), "--qa-dir", str(qa)])
