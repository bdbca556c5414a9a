"""The teacher backend's inputs: FFT log-mel, JPEG decoding at the model's size, the frame window, capabilities."""
from __future__ import annotations

import numpy as np
import pytest

from cloud.server.audio import FftLogMel
from cloud.server.jpeg import decode_frame, encode_jpeg, square
from shared.features import FeatureConfig, LogMel
from shared.jpeg_header import EXAMPLE_JPEG
from shared.protocol import MAX_TIME_S, AudioWindow, Capabilities, Frame, InferRequest, ProtocolError
from tests.helpers.teacher_world import make_tiny_teacher

#: The tiny teacher's vocabulary (tests/helpers/teacher_world.py).
TEACHER_TEXTS = ["kitchen; heard: timer_beep; did: open_oven", "what was that?"]


@pytest.mark.parametrize("n", [0, 100, 239, 240, 401, 16000, 32123])
def test_fft_log_mel_matches_the_training_front_end(n):
    from cloud.data import recording_log_mel

    cfg = FeatureConfig(n_mels=64)
    rng = np.random.default_rng(n)
    pcm = (rng.standard_normal(n) * 3000).astype(np.int16)
    pcm[: n // 3] = 0  # silence too: the log offset, not the magnitude epsilon, must decide
    want = recording_log_mel(pcm, LogMel(cfg))
    got = FftLogMel(cfg)(pcm)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)


def test_jpeg_decoded_at_the_model_size_is_the_area_average_of_the_full_image():
    from cloud.data import resize_frames

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:160]
    img = np.clip(np.stack([xx, yy * 2, xx + yy], -1) + rng.normal(0, 8, (96, 160, 3)), 0, 255).astype(np.uint8)
    jpeg = encode_jpeg(img)
    got = decode_frame(jpeg, 32)
    assert got.shape == (32, 32, 3) and got.dtype == np.uint8
    want = resize_frames(np.ascontiguousarray(square(img))[None], 32)[0]
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.mean() < 3.0 and diff.max() <= 24, (diff.mean(), diff.max())  # JPEG loss + DCT scaling
    assert decode_frame(EXAMPLE_JPEG, 8).tolist() == np.full((8, 8, 3), 128).tolist()


def test_jpeg_that_does_not_decode_is_refused_with_a_reason():
    jpeg = encode_jpeg(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="cannot decode JPEG"):
        decode_frame(jpeg[: len(jpeg) - 200], 32)  # the headers whole, the scan cut short
    with pytest.raises(ValueError, match="exceeds the server's limit"):
        decode_frame(jpeg, 32, max_pixels=64 * 64 - 1)
    with pytest.raises(ValueError, match="no frame header"):
        decode_frame(bytes.fromhex("ffd8ffe000104a46494600ffd9"), 32)


def _pil_jpeg(img: np.ndarray, **kw) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", **kw)
    return buf.getvalue()


@pytest.mark.parametrize("h,w", [(128, 128), (96, 160), (120, 160), (480, 640), (47, 33), (720, 1280), (31, 31),
                                 (257, 129)])
def test_the_libjpeg_turbo_path_gives_pillows_pixels(h, w, monkeypatch):
    """decode_frame goes through libjpeg-turbo's API (simplejpeg) at the DCT scale Pillow's draft
    picks; with the fast path switched off (Pillow alone, as before) every pixel is the same,
    for baseline and progressive, 4:2:0 and 4:4:4, colour and grey JPEGs."""
    import cloud.server.jpeg as jpeg_mod

    rng = np.random.default_rng(h * w)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.clip(np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1) + rng.normal(0, 10, (h, w, 3)),
                  0, 255).astype(np.uint8)
    streams = [encode_jpeg(img), _pil_jpeg(img, quality=80, subsampling=0), _pil_jpeg(img, progressive=True),
               _pil_jpeg(img[..., 0], quality=70)]
    for size in (32, 16):
        fast = [decode_frame(j, size) for j in streams]
        assert jpeg_mod._turbo(streams[1], w, h, None) is not None  # the fast path did run
        with monkeypatch.context() as m:
            m.setattr(jpeg_mod, "_turbo", lambda *a: None)
            slow = [decode_frame(j, size) for j in streams]
        for k, (a, b) in enumerate(zip(fast, slow)):
            assert a.shape == (size, size, 3) and a.dtype == np.uint8
            assert np.array_equal(a, b), (k, size, np.abs(a.astype(int) - b.astype(int)).max())


def test_a_cmyk_jpeg_falls_back_to_pillow():
    from PIL import Image
    import io

    rgb = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, format="JPEG")
    got = decode_frame(buf.getvalue(), 32)
    assert got.shape == (32, 32, 3)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from cloud.server.backend import load_teacher_backend

    folder = make_tiny_teacher(tmp_path_factory.mktemp("t") / "model", TEACHER_TEXTS, max_answer_tokens=6,
                               frame_size_px=48)
    return load_teacher_backend(folder, max_batch_size=4)


def _request(t0: float, frame_times: list[float], audio_s: float = 1.0) -> InferRequest:
    pcm = (np.random.default_rng(0).standard_normal(int(16000 * audio_s)) * 2000).astype(np.int16)
    return InferRequest(id=1, deadline_ms=1000, trigger_label="x", trigger_score=0.5, student_scores={},
                        student_confidence=0.5, audio=AudioWindow.from_samples(pcm, start_s=t0, rate_hz=16000),
                        frames=[Frame(t_s=t, jpeg=EXAMPLE_JPEG) for t in frame_times])


def test_frames_outside_the_window_are_unused_and_distant_times_stay_finite(backend):
    # The tiny teacher: 8 slots at 2 Hz (a 4 s window). A frame 1e9 s before the audio is
    # outside it; the 1.0 MAX_TIME_S-scale times of a long session must not break the model.
    items = {}
    for name, req in {"near": _request(100.0, [100.5]),
                      "far": _request(1e9, [100.5]),
                      "limit": _request(MAX_TIME_S - 10, [MAX_TIME_S - 9.5])}.items():
        spent = {"audio_cpu_ms": 0.0, "jpeg_cpu_ms": 0.0}
        items[name] = backend._item(req, spent)
    assert items["near"]["frame_valid"].sum() == 2  # slots at 101.0 and 100.5 both take the frame at 100.5
    assert not items["far"]["frame_valid"].any()
    assert items["limit"]["frame_valid"].sum() == 2
    out = backend.infer([_request(1e9, [100.5]), _request(MAX_TIME_S - 10, [MAX_TIME_S - 9.5])])
    for item in out.items:
        assert not isinstance(item, ProtocolError), item
        assert all(np.isfinite(p) and 0.0 <= p <= 1.0 for p in item.tags.values())


def test_capabilities_describe_the_checkpoint(backend):
    from cloud.server.capabilities import make_capabilities

    caps = make_capabilities(9, ready=True, model_id=backend.model_id, model=backend.capabilities())
    assert isinstance(caps, Capabilities)
    assert (caps.input.audio_s, caps.input.frame_hz, caps.input.frames, caps.input.frame_size_px) == (2.0, 2.0, 8, 48)
    assert caps.input.sample_rate_hz == 16000
    assert len(caps.tags) == len(backend._tag_names()) and "timer_beep" in caps.labels["audio_event"]
    broken = make_capabilities(9, ready=True, model_id="m", model={"input": {"audio_s": "ten"}})
    assert broken.input is None and broken.tags == ()  # a worker's bad description is dropped, not sent
