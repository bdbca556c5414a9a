"""What the server asks of a model (`Backend`), and the teacher behind it (`TeacherBackend`).

The serving machinery (queue, batching, deadlines, workers) only needs::

    backend.model_id          str, goes into every result
    backend.max_batch_size    the largest batch ``infer`` takes
    backend.warmup()          run once before the worker reports READY
    backend.infer(requests)   -> BatchOutput: one Answer or ProtocolError per request
    backend.capabilities()    optional: the model half of 'capabilities' (cloud/server/capabilities.py)

``infer`` returns answers, not protocol ``Result`` messages: a result's
``timing_ms.total_ms`` runs from the server's receive time to its reply, which
only the broker knows, so the broker assembles the ``Result``. A request whose
inputs turn out to be unusable (a JPEG that does not decode) gets its own
``ProtocolError`` and does not fail the rest of its batch.

`TeacherBackend` serves an AV-LM teacher folder (``cloud.model.io``: safetensors
+ JSON) through the model engineer's public API: ``load_teacher``, the
``WindowSpec`` the checkpoint was trained with, ``collate`` and the log-mel
grid of ``cloud.data``, and ``AVTeacher.generate``. Each request becomes the
same kind of item the training data loader makes: ``audio_history_s`` of
log-mel ending at the window end, one frame every ``1 / frame_hz`` seconds
counted back from the end, the wearer's query (or, without one, the AVSN
summary question) as word ids.

``answer``: a question the wearer-query contract recognises (``shared/queries.py``)
is answered in its closed form from the teacher's per-token perception of the
window (``cloud/server/wearer.py``, the device's own rules over the teacher's
perception); any other question, or none, gets the decoder's greedy text.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from cloud.server.audio import FftLogMel
from cloud.server.jpeg import decode_frame, encode_jpeg
from cloud.server.wearer import answer_wearer, is_wearer_question
from shared.protocol import (MAX_ANSWER_BYTES, MAX_JPEG_PIXELS, MAX_MODEL_ID_BYTES, AudioWindow, ErrorCode, Frame,
                             InferRequest, ModelInput, ProtocolError, ResultEvidence, truncate_utf8)

__all__ = ["Answer", "BatchOutput", "Backend", "TeacherBackend", "load_teacher_backend", "warmup_request",
           "encode_jpeg"]

log = logging.getLogger("earshot.server.backend")



@dataclass(frozen=True)
class Answer:
    """One request's answer: text for the wearer and tag probabilities (label -> [0, 1]);
    with a language model (``lm=``), the one-sentence answer to the request's query and
    the evidence it was written from (``result.sentence`` / ``result.evidence``)."""

    answer: str
    tags: dict[str, float]
    sentence: str | None = None
    evidence: ResultEvidence | None = None


@dataclass
class BatchOutput:
    """``items[i]`` answers ``requests[i]``; ``timing_ms`` are the batch's stages that go on
    the wire (``decode_ms`` inputs -> tensors, ``model_ms`` forward + greedy decoding);
    ``detail_ms`` splits them further for profiling, never sent: CPU time of the worker thread
    (``audio_cpu_ms``, ``jpeg_cpu_ms``, ``prepare_cpu_ms`` in all, ``model_cpu_ms``), which other
    load on a shared host does not inflate the way it inflates wall time."""

    items: list[Answer | ProtocolError]
    timing_ms: dict[str, float] = field(default_factory=dict)
    detail_ms: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """The model behind a worker. Called from one thread at a time."""

    model_id: str
    max_batch_size: int

    def warmup(self) -> None:
        """Run the model once or twice so the first real request is not slow."""
        ...

    def infer(self, requests: Sequence[InferRequest]) -> BatchOutput:
        """Answer 1 .. ``max_batch_size`` validated requests."""
        ...


def warmup_request(seed: int = 0, request_id: int = 0, n_frames: int = 2, audio_s: float = 1.0,
                   rate_hz: int = 16000) -> InferRequest:
    """A plausible request (grey-ish noise frames + quiet noise audio) for warm-up and tests."""
    rng = np.random.default_rng(seed)
    jpeg = encode_jpeg((96 + 64 * rng.random((64, 64, 3))).astype(np.uint8))
    pcm = (300 * rng.standard_normal(int(rate_hz * audio_s))).astype(np.int16)
    return InferRequest(
        id=request_id, deadline_ms=60_000, trigger_label="timer_beep", trigger_score=0.5,
        student_scores={"timer_beep": 0.5}, student_confidence=0.5,
        audio=AudioWindow.from_samples(pcm, start_s=9.0, rate_hz=rate_hz),
        frames=[Frame(t_s=9.0 + k * 0.5, jpeg=jpeg) for k in range(n_frames)],
    )


# --- the teacher ---------------------------------------------------------------


def _model_id(folder: Path) -> str:
    digest = hashlib.sha256()
    with open(folder / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"avlm-{digest.hexdigest()[:12]}"


class TeacherBackend:
    """The AV-LM teacher as a `Backend` (see the module docstring for the inputs)."""

    def __init__(self, model, tokenizer, spec, *, model_id: str, max_batch_size: int,
                 max_jpeg_pixels: int = MAX_JPEG_PIXELS, answerer=None, wearer_answers: bool = True) -> None:
        from cloud.data import MEL_HZ
        from cloud.data_engine.qa import SUMMARY_QUESTION
        from shared.features import FeatureConfig, LogMel

        self.model, self.tokenizer, self.spec = model.eval(), tokenizer, spec
        self.model_id = model_id
        self.max_batch_size = max_batch_size
        self.max_jpeg_pixels = max_jpeg_pixels
        self.front_end = LogMel(FeatureConfig(n_mels=spec.n_mels))
        self.log_mel = FftLogMel(self.front_end.cfg)  # the same features, a third of the time (audio.py)
        self.sample_rate_hz = self.front_end.cfg.sample_rate_hz
        self.mel_hz = MEL_HZ
        self.silence = float(np.log(self.front_end.cfg.log_offset))
        self.default_question = SUMMARY_QUESTION
        self.answerer = answerer  # cloud.lm.answerer.Answerer, or None: no sentence, no evidence
        # The wearer's closed-form questions answered from perception (cloud/server/wearer.py); False: the decoder.
        self.wearer_answers = wearer_answers

    # The one place that knows how a request maps onto the training item layout
    # (cloud.data.QADataset.__getitem__); keep the two in step. docs/protocol.md 6.1.1
    # describes it to clients.
    def _item(self, req: InferRequest, spent_ms: dict[str, float]) -> dict:
        audio_end = req.audio.start_s + req.audio.duration_s if req.audio is not None else 0.0
        last_frame = req.frames[-1].t_s if req.frames else 0.0
        end = max(audio_end, last_frame, req.query_t_s or 0.0)
        t0 = time.thread_time()
        audio = self._audio(req, end)
        t1 = time.thread_time()
        frames = self._frames(req, end)
        t2 = time.thread_time()
        spent_ms["audio_cpu_ms"] += 1e3 * (t1 - t0)
        spent_ms["jpeg_cpu_ms"] += 1e3 * (t2 - t1)
        tok, cfg = self.tokenizer, self.model.cfg
        question = tok.encode(req.query or self.default_question)[: cfg.max_question_tokens] or [tok.unk_id]
        return {
            **audio, **frames, "t_query_s": end, "question_ids": np.asarray(question, np.int64),
            "answer_in": np.asarray([tok.bos_id], np.int64), "answer_out": np.asarray([tok.eos_id], np.int64),
            "tags": np.zeros(len(self._tag_names()), np.float32),
        }

    def _audio(self, req: InferRequest, end: float) -> dict:
        """The ``audio_history_s`` of log-mel that end at ``end`` (silence where there is no audio)."""
        spec = self.spec
        mel = np.full((spec.n_mel_frames, spec.n_mels), self.silence, np.float32)
        mel_valid = np.zeros(spec.n_mel_frames, bool)
        audio_end_s = end
        if req.audio is not None:
            rec_mel = self.log_mel(self._resampled(req.audio))  # frame j ends at start + (j + 1) / 100 s
            e = int(round((end - req.audio.start_s) * self.mel_hz))
            j = np.arange(e - spec.n_mel_frames, e)
            mel_valid = (j >= 0) & (j < len(rec_mel))
            mel[mel_valid] = rec_mel[j[mel_valid]]
            audio_end_s = req.audio.start_s + e / self.mel_hz
        return {"mel": mel, "mel_valid": mel_valid, "audio_end_s": audio_end_s}

    def _frames(self, req: InferRequest, end: float) -> dict:
        """The frame slots before ``end``, decoded at the model's size (only the frames used).

        Raises:
            ProtocolError: bad_request naming the frame that does not decode.
        """
        spec = self.spec
        # One frame slot every 1 / frame_hz, counted back from the end; each takes the
        # newest frame at or before it, if that frame is inside the window (a frame far
        # older than the window, e.g. 1e9 s before the audio, is unused, not stretched).
        size = spec.frame_size_px
        slot_t = end - np.arange(spec.n_frames - 1, -1, -1) / spec.frame_hz
        times = np.asarray([f.t_s for f in req.frames], np.float64)
        idx = np.searchsorted(times, slot_t + 1e-9, side="right") - 1
        picked_t = times[np.clip(idx, 0, None)] if len(times) else slot_t
        valid = (idx >= 0) & (picked_t >= end - spec.n_frames / spec.frame_hz - 1e-6)
        frames = np.zeros((spec.n_frames, size, size, 3), np.uint8)
        decoded: dict[int, np.ndarray] = {}
        for slot in np.flatnonzero(valid):
            k = int(idx[slot])
            if k not in decoded:
                try:
                    decoded[k] = decode_frame(req.frames[k].jpeg, size, self.max_jpeg_pixels)
                except ValueError as exc:
                    raise ProtocolError(ErrorCode.BAD_REQUEST, str(exc), f"infer.frames[{k}].jpeg") from None
            frames[slot] = decoded[k]
        frame_times = np.where(valid, picked_t, slot_t)
        return {"frames": frames, "frame_valid": valid, "frame_times_s": frame_times.astype(np.float64)}

    def _resampled(self, audio: AudioWindow) -> np.ndarray:
        samples = audio.samples()
        if audio.rate_hz == self.sample_rate_hz:
            return samples
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(self.sample_rate_hz, audio.rate_hz)
        out = resample_poly(samples.astype(np.float32), self.sample_rate_hz // g, audio.rate_hz // g)
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)

    @staticmethod
    def _tag_names() -> tuple[str, ...]:
        from cloud.model.teacher import TAG_NAMES

        return TAG_NAMES

    def infer(self, requests: Sequence[InferRequest]) -> BatchOutput:
        import torch

        from cloud.data import collate

        t0, c0 = time.perf_counter(), time.thread_time()
        items: list[Answer | ProtocolError] = []
        prepared, slots = [], []
        spent = {"audio_cpu_ms": 0.0, "jpeg_cpu_ms": 0.0}
        for i, req in enumerate(requests):
            try:
                prepared.append(self._item(req, spent))
                slots.append(i)
                items.append(None)  # filled below
            except ProtocolError as exc:
                items.append(exc)
        t1, c1 = time.perf_counter(), time.thread_time()
        if prepared:
            with torch.inference_mode():
                out = self.model.generate(collate(prepared, self.tokenizer.pad_id))
            names = self._tag_names()
            probs = out["tag_probs"].clamp(0.0, 1.0).tolist()
            for k, ids in enumerate(out["ids"].tolist()):
                query = requests[slots[k]].query
                if self.wearer_answers and is_wearer_question(query):
                    text = self._wearer_answer(query, prepared[k], out, k)
                else:
                    text = truncate_utf8(self.tokenizer.decode(ids), MAX_ANSWER_BYTES)
                items[slots[k]] = Answer(text, dict(zip(names, probs[k])))
        t2, c2 = time.perf_counter(), time.thread_time()
        timing = {"decode_ms": 1e3 * (t1 - t0), "model_ms": 1e3 * (t2 - t1)}
        if prepared and self.answerer is not None:
            self._add_sentences(requests, items, slots, prepared, out)
            timing["lm_ms"] = 1e3 * (time.perf_counter() - t2)
            spent["lm_cpu_ms"] = 1e3 * (time.thread_time() - c2)
        spent.update(prepare_cpu_ms=1e3 * (c1 - c0), model_cpu_ms=1e3 * (c2 - c1))
        return BatchOutput(items, timing, spent)

    def _wearer_answer(self, query: str, item: dict, out: dict, k: int) -> str:
        """The contract's closed-form answer from the teacher's perception (cloud/server/wearer.py)."""
        return answer_wearer(query, float(item["t_query_s"]), sound_probs=out["sound_probs"][k].numpy(),
                             audio_valid=out["audio_valid"][k].numpy(), audio_end_s=float(item["audio_end_s"]),
                             frame_probs=out["frame_probs"][k].numpy(), frame_valid=out["frame_valid"][k].numpy(),
                             frame_times_s=item["frame_times_s"], token_s=self.model.cfg.audio_token_s)

    def _add_sentences(self, requests, items, slots, prepared, out) -> None:
        """Evidence for every answered request; a sentence (one batched LM call) for those
        with a query. The LM answers the wearer's words; without a query there is nothing to
        answer in words, and the closed-form ``answer`` stays what it was."""
        from dataclasses import replace

        from cloud.lm.evidence import window_evidence

        evidences = []
        for k, item in enumerate(prepared):
            evidences.append(window_evidence(
                out["sound_probs"][k].numpy(), out["audio_valid"][k].numpy(), float(item["audio_end_s"]),
                out["frame_probs"][k].numpy(), out["frame_valid"][k].numpy(), item["frame_times_s"],
                float(item["t_query_s"]), out["reliability"][k].tolist(), self.model.cfg.audio_token_s))
        asked = [k for k in range(len(prepared)) if requests[slots[k]].query]
        sentences = self.answerer.answer_batch([requests[slots[k]].query for k in asked],
                                               [evidences[k] for k in asked]) if asked else []
        said = dict(zip(asked, sentences))
        for k, ev in enumerate(evidences):
            sentence = truncate_utf8(said[k], MAX_ANSWER_BYTES) if k in said else None
            items[slots[k]] = replace(items[slots[k]], sentence=sentence, evidence=ev.to_protocol())

    def capabilities(self) -> dict:
        """The model half of ``capabilities`` (cloud/server/capabilities.py): input contract, tags, answers."""
        from cloud.server.capabilities import TEACHER_ANSWERS, model_capabilities

        spec = self.spec
        model_input = ModelInput(audio_s=spec.audio_history_s, sample_rate_hz=self.sample_rate_hz,
                                 frame_hz=spec.frame_hz, frames=spec.n_frames, frame_size_px=spec.frame_size_px)
        answers = TEACHER_ANSWERS
        if self.wearer_answers:
            from cloud.server.capabilities import WEARER_ANSWER

            answers = (*answers, WEARER_ANSWER)
        if self.answerer is not None:
            from cloud.server.capabilities import sentence_answer

            answers = (*answers, sentence_answer(self.answerer.model_id))
        return model_capabilities(model_input, self._tag_names(), answers)

    def warmup(self) -> None:
        """Batch of one, then a full batch: allocator and kernels see both shapes. The batch of
        one is at 48 kHz, so the resampler (scipy, ~1 s to import) is loaded before READY, not
        during the first client's budget."""
        t0 = time.perf_counter()
        for n in sorted({1, self.max_batch_size}):
            out = self.infer([warmup_request(seed=k, request_id=k, rate_hz=48000 if n == 1 else 16000)
                              for k in range(n)])
            bad = [x for x in out.items if not isinstance(x, Answer)]
            if bad:
                raise RuntimeError(f"warm-up request failed: {bad[0]}")
        if self.answerer is not None:  # the LM's first generate allocates; do it before READY
            from dataclasses import replace

            out = self.infer([replace(warmup_request(seed=7), query="what did you hear?", query_t_s=10.0)])
            if not isinstance(out.items[0], Answer) or out.items[0].sentence is None:
                raise RuntimeError(f"warm-up of the language model failed: {out.items[0]}")
        log.info("warm-up done in %.2f s (batch sizes 1 and %d)", time.perf_counter() - t0, self.max_batch_size)


def load_teacher_backend(checkpoint: str | Path, *, max_batch_size: int, model_id: str | None = None,
                         threads: int = 1, max_jpeg_pixels: int = MAX_JPEG_PIXELS, lm: str | None = None,
                         lm_adapter: str | None = "default") -> TeacherBackend:
    """A `TeacherBackend` for a teacher folder (``model.safetensors`` + JSON), or a
    training output folder holding ``model/``.

    ``threads``: torch intra-op threads for this process (0 = torch's default).
    ``lm``: a local language model (``default`` = the embedded SmolLM2, a ``.gguf`` file or a
    Hugging Face folder; None = none) loaded once here, which then writes ``result.sentence``
    for every request with a query, from the evidence it also sends (cloud/lm, docs/lm.md).
    ``lm_adapter``: its answerer adapter (`cloud.lm.tune.load_answerer`).

    Raises:
        UserError: not a teacher folder (from ``cloud.model.io.load_teacher``), or a language
            model that is missing or unreadable (naming the set-up command).
    """
    import torch

    from cloud.data import WindowSpec
    from cloud.model.io import load_teacher

    if threads:
        torch.set_num_threads(threads)
    folder = Path(checkpoint)
    if (folder / "model").is_dir() and not (folder / "model.safetensors").exists():
        folder = folder / "model"  # an 'earshot train' output folder
    model, tokenizer, card = load_teacher(folder)
    if "data" in card:
        spec = WindowSpec(**card["data"])
    else:  # saved without a training run (save_teacher with no extra): the training defaults
        spec = WindowSpec(frame_size_px=model.cfg.frame_size_px, n_mels=model.cfg.n_mels)
        log.warning("%s: the model card has no 'data' window spec; using the training defaults %s", folder, spec)
    model_id = truncate_utf8(model_id or _model_id(folder), MAX_MODEL_ID_BYTES)
    log.info("loaded teacher %s from %s (%d parameters, window %s)", model_id, folder,
             card.get("num_parameters", 0), spec)
    answerer = None
    if lm is not None:
        from cloud.lm.tune import load_answerer

        answerer = load_answerer(lm, lm_adapter, threads=threads)
        log.info("loaded language model %s from %s in %.1f s", answerer.model_id, answerer.lm.path,
                 answerer.lm.load_s)
    return TeacherBackend(model, tokenizer, spec, model_id=model_id, max_batch_size=max_batch_size,
                          max_jpeg_pixels=max_jpeg_pixels, answerer=answerer)
