"""QA records + recordings -> batches of tensors for the teacher.

A `QARecord` (``cloud/data_engine/records.py``) names a recording, a window
``[start, end]`` on its clock and a question with its closed-form answer. The
teacher gets, for each record:

- audio: the log-mel of the ``audio_history_s`` seconds that end at the
  window end (``data.audio_history_s``: 10 s reads the whole window, 1 s only
  the second that co-occurs with the newest frame);
- frames: one every ``1 / frame_hz`` seconds, counted back from the window
  end, inside the window (older slots are masked), resized to the model's
  input size, each stamped with its true timestamp;
- the question and answer as word ids;
- per-token perception targets (``cloud/model/perception.py``): the sound
  events heard in each 0.5 s audio token, the actions and states in each frame.

Two ways to feed the model. From signals (log-mel and frames; what the server
and distillation do), or from the feature cache (`FeatureCache`): the
encoders' per-token outputs computed once per recording, so that training
steps skip the encoders. Cached windows must end on the audio token grid
(0.5 s), which every window the data engine writes does.

Recordings are decoded once and kept in memory already reduced to what the
model reads (`RecordingStore`): the recording-level log-mel at 100 Hz, and
the frames at the model's size. A 30 s recording costs ~0.8 MB of log-mel
plus ~0.9 MB of 32 px frames.

The log-mel grid: frame j ends at (j + 1) / 100 s, i.e. it is
``shared.features.LogMel`` over the audio front-padded by 240 samples, so the
frames that end at a window's end are exactly ``LogMel`` of
``Recording.audio_window(end, history + 0.015)`` (tested).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cloud.data_engine.graph import AUDIBLE_SNR_DB
from cloud.data_engine.records import INFO_FILE, SPLIT_FILES, QARecord, read_jsonl
from cloud.model.context import audio_context_from_power, frame_stats, mel_power, visual_context_from_stats
from cloud.model.perception import token_targets
from cloud.model.teacher import TAG_NAMES
from cloud.model.tokenizer import Tokenizer
from shared.annotations import Annotations
from shared.config import UserError
from shared.dataset import load_dataset
from shared.features import FeatureConfig, LogMel
from shared.labels import names

__all__ = [
    "MEL_HZ",
    "FeatureCache",
    "CachedFeatures",
    "PerceptionWindows",
    "window_targets",
    "label_pos_weights",
    "WindowSpec",
    "CachedRecording",
    "RecordingStore",
    "QADataset",
    "collate",
    "load_records",
    "recording_log_mel",
    "resize_frames",
    "resolve_dataset",
    "tag_targets",
    "window_signals",
]

MEL_HZ = 100  # log-mel frames per second: FeatureConfig's 10 ms hop
_FRONT_PAD = 240  # window (400) - hop (160): frame j then ends at sample 160 (j + 1)
_CHUNK_FRAMES = 6000  # log-mel of long recordings in 60 s pieces (bounded memory)
_MIN_TAG_OVERLAP_S = 0.2  # an event counts for a span if it overlaps it this much (or half its length)
_TAG_INDEX = {name: i for i, name in enumerate(TAG_NAMES)}
_N_AUDIO_EVENTS = len(names("audio_event"))  # TAG_NAMES: audio events, then visual actions


@dataclass(frozen=True)
class WindowSpec:
    """What the model is shown of a window (saved with every checkpoint).

    Attributes:
        audio_history_s: seconds of audio ending at the window end.
        frame_hz: frames per second sampled from the window.
        max_window_s: longest window; sets the number of frame slots.
        frame_size_px: frames are resized to this square size.
        n_mels: log-mel bands.
    """

    audio_history_s: float = 10.0
    frame_hz: float = 2.0
    max_window_s: float = 10.0
    frame_size_px: int = 32
    n_mels: int = 64

    @property
    def n_mel_frames(self) -> int:
        return int(round(self.audio_history_s * MEL_HZ))

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.max_window_s * self.frame_hz)))


# --- recordings, reduced and cached --------------------------------------------


@dataclass
class CachedRecording:
    """What the model reads of one recording.

    Attributes:
        mel: (T, n_mels) float32, frame j covering the 25 ms that end at (j + 1) / 100 s.
        frames: (n, S, S, 3) uint8 at the model's input size.
        frame_times_s: (n,) float64.
        annotations: the recording's annotations (for the tag targets).
    """

    mel: np.ndarray
    frames: np.ndarray
    frame_times_s: np.ndarray
    annotations: Annotations


def recording_log_mel(audio: np.ndarray, front_end: LogMel) -> np.ndarray:
    """(T, n_mels) log-mel of int16 audio on the grid above, T = len // 160."""
    x = torch.from_numpy(audio.astype(np.float32) / 32768.0)
    x = torch.cat([torch.zeros(_FRONT_PAD), x])
    hop, win = front_end.cfg.hop_samples, front_end.cfg.window_samples
    n_frames = 1 + (len(x) - win) // hop if len(x) >= win else 0
    out = []
    with torch.no_grad():
        for j0 in range(0, n_frames, _CHUNK_FRAMES):
            j1 = min(n_frames, j0 + _CHUNK_FRAMES)
            out.append(front_end(x[j0 * hop : (j1 - 1) * hop + win][None])[0])
    if not out:
        return np.zeros((0, front_end.cfg.n_mels), np.float32)
    return torch.cat(out).numpy()


def resize_frames(frames: np.ndarray, size_px: int) -> np.ndarray:
    """uint8 (n, h, w, 3) -> (n, size, size, 3) by area averaging (anti-aliased)."""
    if frames.shape[1:3] == (size_px, size_px):
        return frames
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    out = []
    for chunk in x.split(256):
        out.append(F.interpolate(chunk, size=(size_px, size_px), mode="area"))
    return torch.cat(out).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


class RecordingStore:
    """Recordings of a dataset folder, decoded on first use and kept in memory.

    A key ``<recording id>@<corruption>`` (``cloud/corrupt.py``) gives the
    recording with one modality corrupted, made once from the clean one."""

    def __init__(self, dataset_root: str | Path, frame_size_px: int, n_mels: int) -> None:
        self.dataset = load_dataset(dataset_root)
        self.frame_size_px = frame_size_px
        self.front_end = LogMel(FeatureConfig(n_mels=n_mels))
        if self.front_end.cfg.hop_samples * MEL_HZ != self.front_end.cfg.sample_rate_hz:
            raise ValueError("the log-mel hop must be 10 ms")
        self._cache: dict[str, CachedRecording] = {}

    def get(self, recording_id: str) -> CachedRecording:
        cached = self._cache.get(recording_id)
        if cached is None and "@" in recording_id:
            from cloud.corrupt import corrupt

            base, kind = recording_id.split("@", 1)
            try:
                cached = corrupt(self.get(base), base, kind, self.front_end.cfg.log_offset)
            except ValueError as exc:
                raise UserError(str(exc)) from None
            self._cache[recording_id] = cached
        if cached is None:
            try:
                rec = self.dataset.load(recording_id)
            except KeyError as exc:
                raise UserError(str(exc.args[0])) from None
            if rec.sample_rate_hz != self.front_end.cfg.sample_rate_hz:
                raise UserError(f"{recording_id}: audio at {rec.sample_rate_hz} Hz, the model reads 16000 Hz")
            cached = CachedRecording(
                mel=recording_log_mel(rec.audio, self.front_end),
                frames=resize_frames(rec.frames, self.frame_size_px),
                frame_times_s=rec.frame_times_s.astype(np.float64),
                annotations=rec.annotations,
            )
            self._cache[recording_id] = cached
        return cached


# --- records -------------------------------------------------------------------


def load_records(qa_dir: str | Path, split: str, limit: int = 0) -> list[QARecord]:
    """Records of one split file (``train_av``, ``val_visual``, ``bench`` ...).

    ``limit`` > 0 keeps an evenly spaced subset of about that many (every
    category stays represented, unlike a prefix of a file written recording by
    recording); the two records of a counterfactual pair are kept together.

    Raises:
        UserError: unknown split or missing file.
    """
    if split not in SPLIT_FILES:
        raise UserError(f"split: unknown split {split!r}; splits are {sorted(SPLIT_FILES)}")
    path = Path(qa_dir) / SPLIT_FILES[split]
    if not path.is_file():
        raise UserError(f"{path}: no such file (make the QA folder with 'earshot instruct')")
    records = read_jsonl(path)
    if 0 < limit < len(records):
        # both windows of a counterfactual pair, or neither: a half pair scores nothing per pair
        units: dict[str, list[QARecord]] = {}
        for r in records:
            units.setdefault(str(r.meta.get("pair_id", r.id)), []).append(r)
        groups = list(units.values())
        n_units = max(1, round(limit * len(groups) / len(records)))
        step = len(groups) / n_units
        records = [r for i in range(n_units) for r in groups[int(i * step)]]
    return records


def resolve_dataset(qa_dir: str | Path, dataset: str | None) -> Path:
    """The recordings folder: ``dataset`` if given, else the one ``info.json`` names.

    A relative path in info.json is tried against the working directory, then
    against the QA folder's parent.

    Raises:
        UserError: no dataset given and none found.
    """
    if dataset:
        return Path(dataset)
    info_path = Path(qa_dir) / INFO_FILE
    try:
        named = json.loads(info_path.read_text(encoding="utf-8")).get("dataset")
    except (OSError, ValueError):
        named = None
    if named:
        for candidate in (Path(named), Path(qa_dir).parent / named):
            if candidate.is_dir():
                return candidate
    raise UserError(f"data.dataset: not given and {info_path} names no existing dataset folder ({named!r})")


def _overlaps(onset: float, offset: float, start: float, end: float) -> bool:
    if offset < start or onset > end:
        return False
    overlap = min(offset, end) - max(onset, start)
    return overlap >= min(_MIN_TAG_OVERLAP_S, 0.5 * (offset - onset))


def tag_targets(ann: Annotations, audio_span: tuple[float, float], visual_span: tuple[float, float]) -> np.ndarray:
    """(len(TAG_NAMES),) float32 0/1: audio events heard in ``audio_span``,
    visual actions seen in ``visual_span``. Labels outside the taxonomy
    (imported data) are ignored."""
    out = np.zeros(len(TAG_NAMES), np.float32)
    for e in ann.events:
        i = _TAG_INDEX.get(e.label)
        if i is None:
            continue
        span = audio_span if i < _N_AUDIO_EVENTS else visual_span
        if _overlaps(e.onset_s, e.offset_s, *span):
            out[i] = 1.0
    return out


# --- the dataset -----------------------------------------------------------------


class QADataset:
    """Records -> dicts of arrays (one per record; `collate` batches them).

    With ``cache`` (a `FeatureCache` built by the model being trained), items
    carry cached token features instead of log-mel and frames.
    """

    def __init__(
        self,
        records: Sequence[QARecord],
        store: RecordingStore,
        tokenizer: Tokenizer,
        spec: WindowSpec,
        max_question_tokens: int,
        max_answer_tokens: int,
        cache: "FeatureCache | None" = None,
        token_s: float = 0.5,
        corrupt_share: float = 0.0,
    ) -> None:
        self.records, self.store, self.tokenizer, self.spec = list(records), store, tokenizer, spec
        self.max_question_tokens, self.max_answer_tokens = max_question_tokens, max_answer_tokens
        self.cache, self.token_s = cache, token_s
        # Cached-feature items are pure functions of the record: kept after the first epoch
        # reads them (~20 kB each), so later epochs cost no assembly.
        self._items: dict[int, dict[str, Any]] = {}
        # Where each record's signals come from: its recording, or a corrupted copy
        # (meta "corrupt", or drawn for a share of the records when training for trust).
        self.keys = [signal_key(r, corrupt_share) for r in self.records]
        self._silence = float(math.log(store.front_end.cfg.log_offset))
        # Tokenise once: the same records are read every epoch.
        self._text = [self._encode_text(r) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def use_cache(self, cache: "FeatureCache | None") -> None:
        """Read items from ``cache`` from now on (items kept from another cache are dropped)."""
        self.cache, self._items = cache, {}

    def _encode_text(self, r: QARecord) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tok = self.tokenizer
        question = tok.encode(r.question)[: self.max_question_tokens] or [tok.unk_id]
        answer = tok.encode_answer(r.answer)[: self.max_answer_tokens - 1]
        return (
            np.asarray(question, np.int64),
            np.asarray([tok.bos_id, *answer], np.int64),
            np.asarray([*answer, tok.eos_id], np.int64),
        )

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self.cache is not None and i in self._items:
            return dict(self._items[i])
        r, key = self.records[i], self.keys[i]
        start, end = float(r.window_s[0]), float(r.window_s[1])
        rec = self.store.get(key)
        if self.cache is not None:
            item = self.cache.window(key, start, end, self.spec, self.token_s)
        else:
            item = window_signals(rec.mel, 0.0, rec.frames, rec.frame_times_s, start, end, self.spec, self._silence)
        question, answer_in, answer_out = self._text[i]
        targets = window_targets(rec.annotations, item, self.spec, self.token_s)
        if "@" in key:  # nothing to learn per token from a destroyed modality
            targets["sound_mask" if key.split("@", 1)[1].startswith("audio") else "frame_mask"][:] = 0.0
        item.update(t_query_s=float(r.t_query_s), question_ids=question, answer_in=answer_in, answer_out=answer_out,
                    **targets)
        if self.cache is not None:
            self._items[i] = item
            return dict(item)
        return item


def signal_key(r: QARecord, corrupt_share: float = 0.0) -> str:
    """The store key of a record's signals: ``meta["corrupt"]`` if set; else, for
    ``corrupt_share`` of the records (a hash of the record id decides), an audio or a
    video corruption at equal odds (``cloud/corrupt.py``); else the recording itself."""
    kind = r.meta.get("corrupt")
    if kind is None and corrupt_share > 0:
        from cloud.corrupt import AUDIO_CORRUPTIONS, VIDEO_CORRUPTIONS

        h = int.from_bytes(hashlib.sha256(r.id.encode()).digest()[:8], "big") / 2**64
        if h < corrupt_share:
            pool = AUDIO_CORRUPTIONS if h < corrupt_share / 2 else VIDEO_CORRUPTIONS
            kind = pool[int(h * 1e6) % len(pool)]
    return f"{r.recording_id}@{kind}" if kind else r.recording_id


def window_targets(ann: Annotations, item: dict[str, Any], spec: WindowSpec, token_s: float) -> dict[str, np.ndarray]:
    """Per-token perception targets of a window item (``sound``, ``frame`` and their masks)."""
    n_tok = int(round(spec.audio_history_s / token_s))
    starts = item["audio_end_s"] - (n_tok - np.arange(n_tok)) * token_s
    if "audio_valid" in item:
        tok_valid = item["audio_valid"]
    else:
        tok_valid = item["mel_valid"].reshape(n_tok, -1).any(-1)
    return token_targets(ann, starts, token_s, tok_valid, item["frame_times_s"], item["frame_valid"], AUDIBLE_SNR_DB)


def label_pos_weights(store: RecordingStore, recording_ids: Sequence[str], token_s: float, frame_hz: float,
                      cap: float) -> tuple[np.ndarray, np.ndarray]:
    """``perception.pos_weight=sqrt``: per-label weight of the positive entries of the per-token BCE.

    For each sound label (per ``token_s`` token) and frame label (per frame at
    ``frame_hz``), sqrt(negatives / positives) over the recordings' whole grids,
    counting only supervised entries (the targets' masks), clipped to
    ``[1, cap]``; a label never positive gets 1. Annotations only: nothing is
    decoded. Returns ``(sound (18,), frame (23,))`` float32.
    """
    if not recording_ids:
        raise UserError("perception.pos_weight: no training recordings to count labels on")
    pos, neg = {"sound": 0.0, "frame": 0.0}, {"sound": 0.0, "frame": 0.0}  # per-label counts, summed
    for rid in recording_ids:
        ann = store.dataset.annotations(rid)
        starts = np.arange(0.0, max(ann.duration_s - token_s, 0.0) + 1e-9, token_s)
        times = np.arange(0.0, ann.duration_s, 1.0 / frame_hz)
        t = token_targets(ann, starts, token_s, np.ones(len(starts), bool), times, np.ones(len(times), bool),
                          AUDIBLE_SNR_DB)
        for k in pos:
            pos[k] = pos[k] + (t[k] * t[k + "_mask"]).sum(0)
            neg[k] = neg[k] + ((1.0 - t[k]) * t[k + "_mask"]).sum(0)

    def weights(k: str) -> np.ndarray:
        w = np.clip(np.sqrt(neg[k] / np.maximum(pos[k], 1.0)), 1.0, cap)
        return np.where(pos[k] > 0, w, 1.0).astype(np.float32)

    return weights("sound"), weights("frame")


def window_signals(
    mel: np.ndarray,
    mel_t0_s: float,
    frames: np.ndarray,
    frame_times_s: np.ndarray,
    start_s: float,
    end_s: float,
    spec: WindowSpec,
    silence: float,
) -> dict[str, Any]:
    """The signal part of an item: what the teacher sees of ``[start_s, end_s]``.

    The one definition of the window layout, shared by training, evaluation
    and serving (a server holds a request's audio rather than a recording:
    it passes that audio's log-mel and start time as ``mel_t0_s``).

    Args:
        mel: (T, n_mels) log-mel on the grid of `recording_log_mel`: frame j
            ends at ``mel_t0_s + (j + 1) / 100`` s.
        frames: (n, S, S, 3) uint8 at the model's size; ``frame_times_s`` (n,).
        silence: the log-mel value of silence, ``log(log_offset)``.

    Returns:
        ``mel`` (n_mel_frames, n_mels), ``mel_valid``, ``audio_end_s``: the
        frames that end at ``end_s`` (rounded to 10 ms), masked where there is
        no audio; ``frames`` (n_frames, S, S, 3), ``frame_valid``,
        ``frame_times_s``: one slot per ``1 / frame_hz`` counted back from
        ``end_s``, each the newest frame at or before it, masked before
        ``start_s`` (stamped with the slot time when masked).
    """
    # Audio: the n_mel_frames log-mel frames that end at the window end.
    e = int(round((end_s - mel_t0_s) * MEL_HZ))
    j = np.arange(e - spec.n_mel_frames, e)
    mel_valid = (j >= 0) & (j < len(mel))
    out_mel = np.full((spec.n_mel_frames, mel.shape[1]), silence, np.float32)
    out_mel[mel_valid] = mel[j[mel_valid]]

    # Frames: one per 1/frame_hz, counted back from the end, inside the window.
    slot_t = end_s - np.arange(spec.n_frames - 1, -1, -1) / spec.frame_hz
    idx = np.searchsorted(frame_times_s, slot_t + 1e-9, side="right") - 1
    frame_valid = (slot_t >= start_s - 1e-6) & (idx >= 0)
    if len(frames):
        idx = np.clip(idx, 0, len(frames) - 1)
        picked = np.where(frame_valid[:, None, None, None], frames[idx], 0).astype(np.uint8)
        times = np.where(frame_valid, frame_times_s[idx], slot_t)
    else:  # no video: every frame slot is masked
        s = spec.frame_size_px
        picked = np.zeros((spec.n_frames, s, s, 3), np.uint8)
        frame_valid[:] = False
        times = slot_t
    return {
        "mel": out_mel,
        "mel_valid": mel_valid,
        "audio_end_s": mel_t0_s + e / MEL_HZ,
        "frames": picked,
        "frame_valid": frame_valid,
        "frame_times_s": times.astype(np.float64),
    }


def _pad(seqs: list[np.ndarray], value: int) -> torch.Tensor:
    n = max(len(s) for s in seqs)
    out = np.full((len(seqs), n), value, np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return torch.from_numpy(out)


def collate(items: list[dict[str, Any]], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Stack items into a batch (``cloud.model.teacher.BATCH_KEYS``, or the cached
    keys); text is right-padded with ``pad_id`` to the longest in the batch."""
    batch: dict[str, torch.Tensor] = {}
    for key in ("mel", "mel_valid", "frames", "frame_valid", "frame_times_s", "sound", "sound_mask", "frame",
                "frame_mask", "audio_feat", "audio_valid", "frame_feat", "context"):
        if key in items[0]:
            batch[key] = torch.from_numpy(np.stack([it[key] for it in items]))
    for key in ("audio_end_s", "t_query_s"):
        if key in items[0]:
            batch[key] = torch.tensor([it[key] for it in items], dtype=torch.float64)
    for key in ("question_ids", "answer_in", "answer_out"):
        if key in items[0]:
            batch[key] = _pad([it[key] for it in items], pad_id)
    return batch


# --- the feature cache ----------------------------------------------------------------


@dataclass
class CachedFeatures:
    """One recording through the encoders (see `FeatureCache`).

    Attributes:
        audio: (N, d) float32, token k = the 0.5 s ending at (k + 1) * 0.5 s.
        power: (T,) float32 mel power per 10 ms frame (the gate's SNR estimate).
        frames: (n, d) float32 per recording frame; frame_stats (n, 3) float32.
        frame_times_s: (n,) float64.
    """

    audio: np.ndarray
    power: np.ndarray
    frames: np.ndarray
    frame_stats: np.ndarray
    frame_times_s: np.ndarray


class FeatureCache:
    """The encoders' per-token outputs, computed once per recording.

    The audio encoder reads each 0.5 s token on its own and the visual encoder
    each frame on its own (``cloud/model/encoders.py``), so a window's
    features are a slice of its recording's: `window` returns exactly what
    `AVTeacher.token_features` would compute from `window_signals` (tested).
    Valid only for the weights it was built with: build it after the encoders
    stop changing.
    """

    def __init__(self, model, store: RecordingStore, *, batch_frames: int = 256) -> None:
        self.model, self.store, self.batch_frames = model, store, batch_frames
        self._cache: dict[str, CachedFeatures] = {}

    def __len__(self) -> int:
        return len(self._cache)

    @torch.no_grad()
    def add(self, recording_id: str) -> CachedFeatures:
        if recording_id in self._cache:
            return self._cache[recording_id]
        rec = self.store.get(recording_id)
        fpt = self.model.cfg.mel_frames_per_token
        n_tok = len(rec.mel) // fpt
        mel = torch.from_numpy(rec.mel[: n_tok * fpt])[None]
        audio = self.model.audio_encoder(mel)[0] if n_tok else torch.zeros(0, self.model.cfg.d_model)
        frames = torch.from_numpy(rec.frames)
        feats, stats = [], []
        for chunk in frames.split(self.batch_frames):
            feats.append(self.model.visual_encoder(chunk[None])[0])
            stats.append(frame_stats(chunk))
        d = self.model.cfg.d_model
        entry = CachedFeatures(
            audio=audio.float().numpy(),
            power=mel_power(torch.from_numpy(rec.mel)).numpy(),
            frames=torch.cat(feats).float().numpy() if feats else np.zeros((0, d), np.float32),
            frame_stats=torch.cat(stats).float().numpy() if stats else np.zeros((0, 3), np.float32),
            frame_times_s=rec.frame_times_s,
        )
        self._cache[recording_id] = entry
        return entry

    def window(self, recording_id: str, start_s: float, end_s: float, spec: WindowSpec, token_s: float
               ) -> dict[str, Any]:
        """A cached item: ``audio_feat`` (Na, d), ``audio_valid``, ``audio_end_s``, ``frame_feat``
        (F, d), ``frame_valid``, ``frame_times_s``, ``context`` (5,).

        Raises:
            ValueError: ``end_s`` is not on the token grid.
        """
        c = self.add(recording_id)
        e = int(round(end_s * MEL_HZ))
        per_tok = int(round(token_s * MEL_HZ))
        if e % per_tok:
            raise ValueError(f"{recording_id}: window end {end_s} s is not on the {token_s} s token grid "
                             "(cached features need it; feed signals instead)")
        n_tok = int(round(spec.audio_history_s / token_s))
        k = np.arange(e // per_tok - n_tok, e // per_tok)
        a_valid = (k >= 0) & (k < len(c.audio))
        audio = np.zeros((n_tok, c.audio.shape[1]), np.float32)
        audio[a_valid] = c.audio[k[a_valid]]
        j = np.arange(e - spec.n_mel_frames, e)
        p_valid = (j >= 0) & (j < len(c.power))
        power = np.zeros(len(j), np.float32)
        power[p_valid] = c.power[j[p_valid]]
        # frames: the same slots as window_signals
        slot_t = end_s - np.arange(spec.n_frames - 1, -1, -1) / spec.frame_hz
        idx = np.searchsorted(c.frame_times_s, slot_t + 1e-9, side="right") - 1
        f_valid = (slot_t >= start_s - 1e-6) & (idx >= 0) & (len(c.frames) > 0)
        idx = np.clip(idx, 0, max(len(c.frames) - 1, 0))
        frames = np.where(f_valid[:, None], c.frames[idx], 0.0).astype(np.float32) if len(c.frames) else \
            np.zeros((spec.n_frames, c.audio.shape[1]), np.float32)
        stats = np.where(f_valid[:, None], c.frame_stats[idx], 0.0).astype(np.float32) if len(c.frames) else \
            np.zeros((spec.n_frames, 3), np.float32)
        times = np.where(f_valid, c.frame_times_s[idx] if len(c.frames) else slot_t, slot_t)
        context = torch.cat([
            audio_context_from_power(torch.from_numpy(power)[None], torch.from_numpy(p_valid)[None]),
            visual_context_from_stats(torch.from_numpy(stats)[None], torch.from_numpy(f_valid)[None]),
        ], dim=-1)[0].numpy()
        return {"audio_feat": audio, "audio_valid": a_valid, "audio_end_s": e / MEL_HZ, "frame_feat": frames,
                "frame_valid": f_valid, "frame_times_s": times.astype(np.float64), "context": context}


# --- windows for perception pre-training -----------------------------------------------


class PerceptionWindows:
    """Random full windows of whole recordings, with per-token targets (no questions).

    The window of (step, i) is a pure function of (seed, step, i), so
    pre-training needs no sampler state. With ``augment`` (pre-training), a
    window ends anywhere on the 10 ms grid (token boundaries move against the
    events), and its signals are perturbed the way a recording can differ
    without changing what happened in it: a gain of -6..+6 dB, one time and one
    frequency band masked in the log-mel (SpecAugment), a frame brightness and
    contrast change and a shift of up to 2 px. Without it (evaluation) windows
    end on the token grid and are left as they are.
    """

    def __init__(self, store: RecordingStore, recording_ids: Sequence[str], spec: WindowSpec, seed: int,
                 token_s: float = 0.5, augment: bool = False) -> None:
        if not recording_ids:
            raise UserError("perception: no training recordings to pre-train on")
        self.store, self.ids, self.spec, self.seed, self.token_s = store, list(recording_ids), spec, seed, token_s
        self.augment = augment
        self._log_offset = store.front_end.cfg.log_offset
        self._silence = float(math.log(self._log_offset))

    def batch(self, step: int, size: int, items: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Windows ``items`` (default: all ``size``) of step ``step``'s batch.

        Window i of a step is drawn from its own stream ``(seed, step, i)``, so
        processes that split a batch (``items``) build only their share and the
        union is the batch one process would build."""
        out = []
        for i in range(size) if items is None else items:
            rng = np.random.default_rng([self.seed, step, i])
            rec = self.store.get(self.ids[int(rng.integers(len(self.ids)))])
            duration = len(rec.mel) / MEL_HZ
            lo = min(self.spec.max_window_s, duration)
            grid = 1.0 / MEL_HZ if self.augment else self.token_s
            first, last = math.ceil(lo / grid - 1e-9), math.floor(duration / grid + 1e-9)
            end = round(grid * int(rng.integers(first, max(first, last) + 1)), 3)
            start = max(0.0, end - self.spec.max_window_s)
            item = window_signals(rec.mel, 0.0, rec.frames, rec.frame_times_s, start, end, self.spec, self._silence)
            if self.augment:
                self._perturb(item, rng)
            item.update(t_query_s=end, **window_targets(rec.annotations, item, self.spec, self.token_s))
            out.append(item)
        return out

    def _perturb(self, item: dict[str, Any], rng: np.random.Generator) -> None:
        mel = item["mel"]
        gain = 10 ** (rng.uniform(-6, 6) / 20)
        mel[:] = np.log(np.maximum(np.exp(mel) - self._log_offset, 0.0) * gain + self._log_offset)
        t0 = int(rng.integers(0, max(1, mel.shape[0] - 20)))
        mel[t0 : t0 + int(rng.integers(0, 20))] = self._silence  # up to 0.2 s
        f0 = int(rng.integers(0, max(1, mel.shape[1] - 8)))
        mel[:, f0 : f0 + int(rng.integers(0, 8))] = self._silence  # up to 8 bands
        frames = item["frames"].astype(np.float32)
        frames = (frames - 128.0) * rng.uniform(0.8, 1.2) + 128.0 + rng.uniform(-20, 20)
        dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
        frames = np.roll(frames, (dy, dx), axis=(1, 2))
        item["frames"] = np.clip(frames, 0, 255).astype(np.uint8)
