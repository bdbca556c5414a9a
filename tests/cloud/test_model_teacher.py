"""The teacher model: shapes, the shared clock, the gate, causality, EOS, save/load, data windows."""

import numpy as np
import pytest
import torch

from cloud.data import MEL_HZ, QADataset, RecordingStore, WindowSpec, collate, load_records, tag_targets, window_signals
from cloud.model.config import ModelConfig
from cloud.model.context import CONTEXT_NAMES, audio_context, visual_context
from cloud.model.decoder import Decoder, TransformerDecoder
from cloud.model.gate import ReliabilityGate
from cloud.model.io import load_teacher, save_teacher
from cloud.model.teacher import TAG_NAMES, AVTeacher
from cloud.model.tokenizer import Tokenizer
from shared.config import ConfigError
from shared.features import FeatureConfig, LogMel
from shared.recording import load_recording

from tests.helpers.teacher_world import make_signals, make_world  # noqa: E402

torch.set_num_threads(1)
TINY = dict(audio_channels=16, frame_size_px=32, visual_channels=8, d_model=32, n_heads=2,
            decoder_layers=1, gate_hidden=8, dropout=0.0)
VOCAB = 40


def tiny_model(**kw) -> AVTeacher:
    torch.manual_seed(0)
    return AVTeacher(ModelConfig(**{**TINY, **kw}), VOCAB).eval()


def random_batch(b=3, history_s=4.0, n_frames=4, size=32, end_s=20.0, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    t = int(history_s * MEL_HZ)
    return {
        "mel": torch.randn(b, t, 64, generator=g) - 4.0,
        "mel_valid": torch.ones(b, t, dtype=torch.bool),
        "audio_end_s": torch.full((b,), end_s, dtype=torch.float64),
        "frames": torch.randint(0, 256, (b, n_frames, size, size, 3), generator=g, dtype=torch.uint8),
        "frame_valid": torch.ones(b, n_frames, dtype=torch.bool),
        "frame_times_s": (end_s - torch.arange(n_frames - 1, -1, -1, dtype=torch.float64))[None].repeat(b, 1),
        "t_query_s": torch.full((b,), end_s, dtype=torch.float64),
        "question_ids": torch.randint(4, VOCAB, (b, 5), generator=g),
        "answer_in": torch.cat([torch.full((b, 1), 2), torch.randint(4, VOCAB, (b, 3), generator=g)], 1),
        "answer_out": torch.randint(4, VOCAB, (b, 4), generator=g),
        "tags": torch.zeros(b, len(TAG_NAMES)),
    }


def test_shapes():
    model, batch = tiny_model(), random_batch()
    out = model(batch)
    assert out["logits"].shape == (3, 4, VOCAB)
    assert out["tag_logits"].shape == (3, len(TAG_NAMES)) == (3, 18 + 15)
    assert out["reliability"].shape == (3, 2)
    enc = model.encode(batch)
    n_audio, n_question = 4.0 / 0.5, batch["question_ids"].shape[1]
    # <av>, the time-sorted tokens, one label-pointer slot per question word, one relation slot
    assert enc.prefix.shape == (3, 1 + n_audio + 4 + n_question + 1, 32)
    assert enc.prefix_mask.shape == (3, 1 + n_audio + 4 + n_question + 1)
    assert not enc.prefix_mask[:, 1 + int(n_audio) + 4:].any()  # no question word names a label (no label ids)
    assert model.num_parameters() < 100_000


def test_a_label_pointer_reads_where_its_label_was_perceived():
    """A question word that names a label gets a prefix token pooled from the tokens where that
    label's per-token logit is high: the same token whatever else the window holds elsewhere."""
    from cloud.model.perception import FRAME_LABELS, SOUND_LABELS

    ids = list(range(10, 10 + len(SOUND_LABELS) + len(FRAME_LABELS)))
    torch.manual_seed(0)
    # blind fusion: a constant trust, so only the tokens near the knock can move its pointer
    model = AVTeacher(ModelConfig(**{**TINY, "fusion": "blind"}), 64, label_word_ids=ids).eval()
    batch = random_batch()
    knock = ids[SOUND_LABELS.index("knock")]
    batch["question_ids"][:] = 5  # words that name no label ...
    batch["question_ids"][:, 2] = knock  # ... and "knock"
    p = model.perceive(batch)
    n_audio = p["sound_logits"].shape[1]
    with torch.no_grad():  # the knock "heard" in token 3 only
        model.sound_head.bias[SOUND_LABELS.index("knock")] = -30.0
    original = model.perceive

    def perceive(b):
        out = original(b)
        out["sound_logits"] = out["sound_logits"].clone()
        out["sound_logits"][:, 3, SOUND_LABELS.index("knock")] = 30.0
        return out

    model.perceive = perceive
    enc = model.encode(batch)
    slot = 1 + n_audio + batch["frame_valid"].shape[1] + 2
    assert enc.prefix_mask[:, slot].all() and enc.prefix_mask[:, slot + 1:].sum() == 0  # one label: no relation
    ptr_a = enc.prefix[:, slot].clone()
    # change every audio token but the knock's and its two neighbours on each side (the token
    # context's reach): the knock's pointer does not move
    batch2 = {k: v.clone() for k, v in batch.items()}
    keep = slice(1 * 50, 6 * 50)
    noise = torch.randn_like(batch2["mel"])
    noise[:, keep] = 0.0
    batch2["mel"] = batch2["mel"] + noise
    enc2 = model.encode(batch2)
    assert torch.allclose(enc2.prefix[:, slot], ptr_a, atol=1e-4)


def test_an_audio_token_and_a_frame_at_the_same_time_share_the_time_embedding():
    model, batch = tiny_model(), random_batch()
    # Audio tokens are centred at end - 0.25, end - 0.75, ...; put frame 2 at end - 0.75.
    batch["frame_times_s"][:, 2] = 20.0 - 0.75
    enc = model.encode(batch)
    t, mod = enc.times_rel_s[0], enc.modality[0]
    a = ((t == -0.75) & (mod == 0)).nonzero().item()
    v = ((t == -0.75) & (mod == 1)).nonzero().item()
    assert torch.equal(enc.time_embedding[0, a], enc.time_embedding[0, v])
    # ... and a token 0.5 s away does not.
    other = ((t == -0.25) & (mod == 0)).nonzero().item()
    assert not torch.allclose(enc.time_embedding[0, a], enc.time_embedding[0, other])
    # Time order: the frame at -0.75 s sits next to the audio token at -0.75 s.
    assert torch.all(t[1:] >= t[:-1]) and abs(a - v) == 1


def test_shifting_the_window_shifts_positions_and_shifting_everything_changes_nothing():
    model, batch = tiny_model(), random_batch()
    base = model.encode(batch)
    shifted = dict(batch, audio_end_s=batch["audio_end_s"] - 3.0, frame_times_s=batch["frame_times_s"] - 3.0)
    enc = model.encode(shifted)
    torch.testing.assert_close(enc.times_rel_s, base.times_rel_s - 3.0)
    assert not torch.allclose(enc.prefix, base.prefix)
    moved = dict(shifted, t_query_s=batch["t_query_s"] - 3.0)  # query moves with the window
    enc = model.encode(moved)
    torch.testing.assert_close(enc.times_rel_s, base.times_rel_s)
    torch.testing.assert_close(enc.prefix, base.prefix)


def _mel_of(pcm: np.ndarray) -> torch.Tensor:
    front = LogMel(FeatureConfig())
    x = torch.from_numpy(np.concatenate([np.zeros(240), pcm]).astype(np.float32) / 32768)
    return front(x[None])  # (1, T, 64) on the data pipeline's grid


def test_context_estimates_follow_the_signals():
    quiet, _, _, _ = make_signals(0, 10.0, 32, snr_db=30.0)
    noisy, _, _, _ = make_signals(0, 10.0, 32, snr_db=-5.0)
    mels = torch.cat([_mel_of(quiet), _mel_of(noisy)])
    snr = audio_context(mels, torch.ones(mels.shape[:2], dtype=torch.bool))[:, 0]
    assert snr[0] > snr[1] + 10.0, snr

    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (1, 2, 32, 32, 3)).astype(np.uint8)
    blurred = sharp.astype(np.float32)
    blurred = ((blurred + np.roll(blurred, 1, 3) + np.roll(blurred, 2, 3) + np.roll(blurred, 3, 3)) / 4).astype(np.uint8)
    hands = sharp.copy()
    hands[..., 8:, :, :] = (224, 172, 140)  # the lower three quarters covered by skin
    frames = torch.from_numpy(np.concatenate([sharp, blurred, hands]))
    ctx = visual_context(frames, torch.ones(3, 2, dtype=torch.bool))
    sharpness, skin = ctx[:, CONTEXT_NAMES.index("sharpness") - 2], ctx[:, CONTEXT_NAMES.index("skin") - 2]
    assert sharpness[0] > sharpness[1] + 0.3
    assert skin[2] > 0.7 > 0.1 > skin[0]


def test_gate_moves_trust_to_video_when_the_snr_estimate_drops_and_blind_ignores_it():
    ctx = torch.tensor([[30.0, -20.0, -1.6, 0.1, 0.19], [-5.0, 20.0, -1.6, 0.1, 0.19]])
    gate = ReliabilityGate(16, 8, context_aware=True)
    r = gate(ctx)
    share_video = r[:, 1] / r.sum(1)
    assert r[1, 0] < r[0, 0] - 0.3  # audio trusted less in noise
    assert share_video[1] > share_video[0]
    blind = ReliabilityGate(16, 8, context_aware=False)
    rb = blind(ctx)
    assert torch.equal(rb[0], rb[1])

    # Through the whole model: same frames, the audio of a quiet vs. a noisy room.
    quiet, _, _, _ = make_signals(1, 4.0, 32, snr_db=30.0)
    noisy, _, _, _ = make_signals(1, 4.0, 32, snr_db=-5.0)
    batch = random_batch(b=2, history_s=3.0)
    batch["mel"] = torch.cat([_mel_of(quiet), _mel_of(noisy)])[:, -300:]
    batch["frames"][1] = batch["frames"][0]
    r = tiny_model().encode(batch).reliability
    assert r[1, 0] < r[0, 0] and torch.isclose(r[1, 1], r[0, 1])
    rb = tiny_model(fusion="blind").encode(batch).reliability
    assert torch.equal(rb[0], rb[1])


def test_decoder_is_causal():
    torch.manual_seed(0)
    dec = TransformerDecoder(VOCAB, 32, 2, 2, 20, 0.0, pad_id=0).eval()
    assert isinstance(dec, Decoder)
    prefix, mask = torch.randn(2, 6, 32), torch.ones(2, 6, dtype=torch.bool)
    ids = torch.randint(4, VOCAB, (2, 8))
    changed = ids.clone()
    changed[:, 5] = (changed[:, 5] + 1 - 4) % (VOCAB - 4) + 4
    a, b = dec(prefix, mask, ids), dec(prefix, mask, changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_generation_stops_at_eos():
    torch.manual_seed(0)
    dec = TransformerDecoder(VOCAB, 32, 1, 2, 40, 0.0, pad_id=0).eval()
    eos, calls = 3, []
    real_head = dec.lm_head.forward

    def scripted(x):  # row 0 ends after 1 token, row 1 after 3 (one output head call per new token)
        calls.append(x.shape)
        logits = real_head(x)
        last = logits if logits.dim() == 2 else logits[:, -1]
        n_new = len(calls)
        for row, stop in ((0, 1), (1, 3)):
            last[row] = -1e9
            last[row, eos if n_new >= stop else 10 + n_new] = 0.0
        return logits

    dec.lm_head.forward = scripted
    out = dec.generate(torch.randn(2, 3, 32), torch.ones(2, 3, dtype=torch.bool), torch.full((2, 2), 5), 10, eos)
    assert len(calls) == 3  # stopped when both rows ended, not after 10
    assert out.tolist() == [[eos, 0, 0], [11, 12, eos]]


def test_batched_and_single_answers_agree_whatever_the_padding():
    model, batch = tiny_model(), random_batch()
    batch["question_ids"][0, 3:] = 0  # a short question padded in the batch
    together = model.generate(batch)["ids"]
    alone = {k: v[:1] for k, v in batch.items()}
    alone["question_ids"] = alone["question_ids"][:, :3]
    single = model.generate(alone)["ids"]
    assert together[0, : single.shape[1]].tolist() == single[0].tolist()


def test_safetensors_round_trip_gives_identical_outputs(tmp_path):
    model, batch = tiny_model(fusion="blind"), random_batch()
    tok = Tokenizer([*("<pad>", "<unk>", "<bos>", "<eos>"), *(f" w{i}" for i in range(VOCAB - 4))])
    folder = save_teacher(tmp_path / "m", model, tok, {"data": {"audio_history_s": 4.0}})
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "model_config.json", "vocab.json"]
    back, tok2, card = load_teacher(folder)
    assert tok2.words == tok.words and card["tags"] == list(TAG_NAMES) and back.cfg == model.cfg
    for key in ("logits", "tag_logits", "reliability"):
        assert torch.equal(model(batch)[key], back(batch)[key])
    assert torch.equal(model.generate(batch)["ids"], back.generate(batch)["ids"])
    assert (folder / "model.safetensors").read_bytes()[:8] != b"\x80\x02\x8a\x0a"[:8]  # not a pickle


def test_tokenizer_round_trips_closed_form_answers():
    answers = ["oven", "yes", "doorbell, open_door", "0s timer_beep; 2s open_oven",
               "kitchen; heard: timer_beep, chopping; did: chop", "none"]
    tok = Tokenizer.build(answers)
    for a in answers:
        assert tok.decode(tok.encode(a)) == a
    assert tok.encode("zebra")[0] == tok.unk_id
    assert tok.decode([tok.encode("oven")[0], tok.eos_id, tok.encode("yes")[0]]) == "oven"


def test_config_is_validated():
    with pytest.raises(ConfigError, match="model.fusion"):
        ModelConfig(fusion="late")
    with pytest.raises(ConfigError, match="model.audio_token_s"):
        ModelConfig(audio_token_s=0.3)


def test_data_windows_match_the_front_end_and_mask_what_is_outside(tmp_path):
    qa = make_world(tmp_path, n_recordings=2, seconds=6.0)
    records = load_records(qa, "train_av")
    spec = WindowSpec(audio_history_s=8.0, frame_hz=2.0, max_window_s=10.0, frame_size_px=32)
    store = RecordingStore(tmp_path / "world", 32, 64)
    tok = Tokenizer.build([t for r in records for t in (r.question, r.answer)])
    item = QADataset(records, store, tok, spec, 32, 24)[0]
    # 8 s of audio ending at 6 s: 2 s before the recording start are masked silence.
    assert item["mel"].shape == (800, 64) and item["mel_valid"].sum() == 600 and not item["mel_valid"][:200].any()
    rec = load_recording(tmp_path / "world" / "recordings" / records[0].recording_id)
    direct = LogMel(FeatureConfig())(torch.from_numpy(rec.audio_window(6.0, 6.015).astype(np.float32) / 32768)[None])[0]
    torch.testing.assert_close(torch.from_numpy(item["mel"][200:]), direct, atol=1e-4, rtol=1e-4)
    # 20 frame slots over 10 s at 2 fps, the window is [0, 6]: slots at 0, 0.5 .. 6 s are valid.
    assert item["frames"].shape == (20, 32, 32, 3) and item["frame_valid"].tolist() == [False] * 7 + [True] * 13
    assert item["frame_times_s"][-1] == pytest.approx(5.9) and item["frames"][:7].max() == 0
    tags = tag_targets(rec.annotations, (0.0, 6.0), (0.0, 6.0))
    assert [TAG_NAMES[i] for i in np.flatnonzero(tags)] == ["timer_beep", "open_oven"]
    assert tag_targets(rec.annotations, (0.0, 1.0), (0.0, 1.0)).sum() == 0
    # A server holds only a request's audio: the same window from a log-mel that starts at 1 s.
    cached, short = store.get(records[0].recording_id), WindowSpec(audio_history_s=4.0, frame_size_px=32)
    silence = float(np.log(1e-3))
    full = window_signals(cached.mel, 0.0, cached.frames, cached.frame_times_s, 0.0, 6.0, short, silence)
    late = window_signals(cached.mel[100:], 1.0, cached.frames, cached.frame_times_s, 0.0, 6.0, short, silence)
    for key in full:
        np.testing.assert_array_equal(full[key], late[key], err_msg=key)
    batch = collate([item, QADataset(records, store, tok, spec, 32, 24)[1]])
    assert batch["question_ids"].dtype == torch.long and batch["audio_end_s"].tolist() == [6.0, 6.0]


def test_processes_that_split_a_perception_batch_build_exactly_the_one_batch(tmp_path):
    from cloud.data import PerceptionWindows

    make_world(tmp_path, n_recordings=3, seconds=10.0)
    store = RecordingStore(tmp_path / "world", 32, 64)
    spec = WindowSpec(audio_history_s=4.0, max_window_s=4.0, frame_size_px=32)
    windows = PerceptionWindows(store, sorted(p.name for p in (tmp_path / "world" / "recordings").iterdir()), spec,
                                seed=3, augment=True)
    whole = windows.batch(5, 8)
    halves = {0: windows.batch(5, 8, range(0, 8, 2)), 1: windows.batch(5, 8, range(1, 8, 2))}
    for i, item in enumerate(whole):
        part = halves[i % 2][i // 2]
        for key in item:
            np.testing.assert_array_equal(np.asarray(item[key]), np.asarray(part[key]), err_msg=f"window {i} {key}")
    # distinct windows within a step and across steps; the same step again is the same batch
    ends = [w["t_query_s"] for w in whole]
    assert len(set(ends)) > 4 and ends != [w["t_query_s"] for w in windows.batch(6, 8)]
    assert ends == [w["t_query_s"] for w in windows.batch(5, 8)]


def test_a_different_decoder_plugs_in_behind_the_interface():
    # Stand-in for a larger pretrained LM: another width, its own embedding table.
    wide = TransformerDecoder(VOCAB, 48, 1, 2, 64, 0.0, pad_id=0)
    torch.manual_seed(0)
    model = AVTeacher(ModelConfig(**TINY), VOCAB, decoder=wide).eval()
    assert isinstance(model.to_decoder, torch.nn.Linear) and model.decoder is wide
    batch = random_batch()
    assert model(batch)["logits"].shape == (3, 4, VOCAB)
    assert model.generate(batch, max_new_tokens=3)["ids"].shape[0] == 3


def test_partial_windows_encode_only_their_valid_slots_with_the_same_outputs():
    """A request fills part of the window (the edge sends 5 s and 4 frames of a 10 s, 20-slot
    window). The teacher encodes only the valid audio tokens and frames and cuts masked slots from
    the prefix (``AVTeacher.compact``); every output must equal running every slot."""
    from cloud.model.perception import FRAME_LABELS, SOUND_LABELS

    ids = list(range(10, 10 + len(SOUND_LABELS) + len(FRAME_LABELS)))
    torch.manual_seed(3)
    model = AVTeacher(ModelConfig(**TINY), 64, label_word_ids=ids).eval()
    batch = random_batch(b=4, history_s=6.0, n_frames=8, seed=5)
    t = batch["mel"].shape[1]
    batch["mel_valid"][0, : t // 2] = False          # the older half of the audio missing
    batch["mel_valid"][1] = False                     # no audio at all
    batch["mel_valid"][2, : t - 150] = False          # 1.5 s of audio
    batch["frame_valid"][0, :5] = False               # 3 of 8 frames
    batch["frame_valid"][2] = False                   # no frames
    batch["frame_valid"][3, ::2] = False              # every other frame slot
    batch["frames"][~batch["frame_valid"]] = 0        # what the backend puts in an empty slot
    batch["question_ids"][:, 1] = ids[SOUND_LABELS.index("knock")]  # label pointers read the slots too
    batch["question_ids"][:, 3] = ids[len(SOUND_LABELS)]

    outs = {}
    for compact in (False, True):
        model.compact = compact
        with torch.no_grad():
            enc = model.encode(batch)
            outs[compact] = (model(batch), model.generate(batch, max_new_tokens=6),
                             model.option_logprobs(batch, [[[11], [12, 13]]] * 4), enc)
    (full, gen_full, opt_full, enc_full), (comp, gen_comp, opt_comp, enc_comp) = outs[False], outs[True]
    # the prefix holds only the longest valid run: 12 - 6 = 6 (record 0: 6 tokens) + 3 frames, not 12 + 8
    n_valid = int((torch.cat([enc_full.audio_valid, enc_full.frame_valid], 1)).sum(1).max())
    assert enc_comp.prefix.shape[1] == enc_full.prefix.shape[1] - (12 + 8 - n_valid)
    assert n_valid < 12 + 8
    for key in ("logits", "tag_logits", "reliability"):
        torch.testing.assert_close(comp[key], full[key], atol=1e-5, rtol=1e-5)
    for key, valid in (("sound_logits", enc_full.audio_valid), ("frame_logits", enc_full.frame_valid)):
        torch.testing.assert_close(comp[key][valid], full[key][valid], atol=1e-5, rtol=1e-5)
    assert torch.equal(gen_comp["ids"], gen_full["ids"])
    torch.testing.assert_close(torch.tensor(opt_comp), torch.tensor(opt_full), atol=1e-4, rtol=1e-5)
    # and the reference really differs from skipping nothing: the cut is not a no-op
    assert enc_comp.prefix.shape != enc_full.prefix.shape


def test_a_window_with_every_slot_empty_still_answers():
    model, batch = tiny_model(), random_batch(b=2)
    batch["mel_valid"][:] = False
    batch["frame_valid"][:] = False
    with torch.no_grad():
        enc = model.encode(batch)
        out = model.generate(batch, max_new_tokens=3)
    assert enc.prefix.shape[1] == 1 + batch["question_ids"].shape[1] + 1  # <av> + pointer slots + relation
    assert out["ids"].shape[0] == 2 and torch.isfinite(out["tag_probs"]).all()


def test_context_of_a_partial_window_reads_only_its_valid_frames_with_the_same_result():
    from cloud.model.context import audio_context_from_power, frame_stats, mel_power, visual_context_from_stats

    g = torch.Generator().manual_seed(4)
    mel = torch.randn(3, 400, 64, generator=g) - 4.0
    mel_valid = torch.ones(3, 400, dtype=torch.bool)
    mel_valid[0, :300] = False
    mel_valid[1] = False
    mel[~mel_valid] = 50.0  # garbage where nothing was sent: must not reach the estimate
    frames = torch.randint(0, 256, (3, 6, 32, 32, 3), generator=g, dtype=torch.uint8)
    frame_valid = torch.tensor([[0, 0, 0, 0, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    got_a, got_v = audio_context(mel, mel_valid), visual_context(frames, frame_valid)
    torch.testing.assert_close(got_a, audio_context_from_power(mel_power(mel), mel_valid))
    torch.testing.assert_close(got_v, visual_context_from_stats(frame_stats(frames), frame_valid))
    assert got_a[1].tolist() == [-20.0, -100.0] and got_v[2].tolist() == [0.0, 0.0, 0.0]
    # the valid part alone gives the same estimate
    torch.testing.assert_close(got_a[0], audio_context(mel[:1, 300:], mel_valid[:1, 300:])[0])


def test_positive_weights_count_each_label_over_the_token_grid_and_weigh_its_positives():
    """``perception.pos_weight=sqrt``: a rare label weighs more than a common one, a label never
    heard weighs 1, the cap holds, sounds under the audible SNR are not counted as positives;
    and the loss multiplies exactly the positive entries of a label by its weight."""
    from types import SimpleNamespace

    from cloud.data import label_pos_weights
    from cloud.model.perception import FRAME_LABELS, SOUND_LABELS
    from cloud.train import perception_loss
    from shared.annotations import Annotations, Event

    anns = {
        "a": Annotations("a", 20.0, events=[Event("e1", 0.0, 10.0, "speech", "audio"),  # 20 of 40 tokens
                                            Event("e2", 12.0, 12.5, "doorbell", "audio"),  # 1 token
                                            Event("e3", 14.0, 16.0, "knock", "audio", snr_db=-40.0)]),  # inaudible
        "b": Annotations("b", 20.0, events=[Event("e4", 2.0, 12.0, "speech", "audio")]),
    }
    store = SimpleNamespace(dataset=SimpleNamespace(annotations=lambda rid: anns[rid]))
    sound, frame = label_pos_weights(store, ["a", "b"], 0.5, 2.0, cap=6.0)
    assert sound.shape == (len(SOUND_LABELS),) and frame.shape == (len(FRAME_LABELS),)
    w = dict(zip(SOUND_LABELS, sound.tolist()))
    assert w["speech"] == pytest.approx(1.0)  # 40 positives of 80: sqrt(40/40)
    assert w["doorbell"] == pytest.approx(6.0)  # sqrt(79/1) = 8.9, capped
    assert w["knock"] == 1.0 and w["car_horn"] == 1.0 and frame.tolist() == [1.0] * len(FRAME_LABELS)
    uncapped, _ = label_pos_weights(store, ["a", "b"], 0.5, 2.0, cap=100.0)
    assert dict(zip(SOUND_LABELS, uncapped.tolist()))["doorbell"] == pytest.approx(79 ** 0.5, rel=1e-5)

    torch.manual_seed(0)
    out = {"sound_logits": torch.randn(2, 5, len(SOUND_LABELS)), "frame_logits": torch.randn(2, 3, len(FRAME_LABELS))}
    batch = {"sound": (torch.rand(2, 5, len(SOUND_LABELS)) > 0.7).float(), "sound_mask": torch.ones(2, 5, len(SOUND_LABELS)),
             "frame": (torch.rand(2, 3, len(FRAME_LABELS)) > 0.7).float(), "frame_mask": torch.ones(2, 3, len(FRAME_LABELS))}
    ones = (torch.ones(len(SOUND_LABELS)), torch.ones(len(FRAME_LABELS)))
    assert perception_loss(out, batch, ones).item() == pytest.approx(perception_loss(out, batch).item(), rel=1e-6)
    k = SOUND_LABELS.index("doorbell")
    heavy = (torch.ones(len(SOUND_LABELS)).index_fill(0, torch.tensor([k]), 3.0), ones[1])
    pos = batch["sound"][..., k]
    extra = 2.0 * (pos * torch.nn.functional.softplus(-out["sound_logits"][..., k])).sum() / batch["sound_mask"].sum() / 2
    assert perception_loss(out, batch, heavy).item() == pytest.approx(perception_loss(out, batch).item() + extra.item(),
                                                                      rel=1e-5)


def test_perception_pos_weight_is_checked_before_any_work():
    from cloud.teacher_config import PerceptionConfig

    with pytest.raises(ConfigError, match="perception.pos_weight"):
        PerceptionConfig(pos_weight="balanced")
    with pytest.raises(ConfigError, match="perception.pos_weight_max"):
        PerceptionConfig(pos_weight="sqrt", pos_weight_max=0.5)
