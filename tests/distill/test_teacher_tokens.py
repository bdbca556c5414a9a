"""The per-token teacher's soft targets (distill/teacher_tokens.py) and the hard labels (distill/data.py).

The soft targets must be what the teacher itself says of each token in a window of its own
(``AVTeacher.perceive`` on ``cloud.data.window_signals``), pooled over the tokens that tile a
student window; the hard labels must be the teacher's perception targets pooled the same way.
"""
import math

import numpy as np
import pytest
import torch

from cloud.data import WindowSpec, collate, window_signals
from cloud.model.io import load_teacher
from cloud.model.perception import FRAME_LABELS, SOUND_LABELS
from distill.data import TeacherView, load_split
from distill.students import STUDENT_LABELS
from distill.teacher_tokens import frame_track, sound_track, teacher_window_targets
from shared.dataset import load_dataset

from tests.helpers.distill_world import SECONDS


@pytest.fixture(scope="module")
def teacher_and_windows(world, teacher_dir):
    teacher, _, card = load_teacher(teacher_dir)
    view = TeacherView.from_card(card)
    windows = load_split(load_dataset(world), "test", audio_s=1.0, stride_s=0.25, teacher_view=view,
                         frame_size_px=32, max_recordings=1)
    return teacher, card, view, windows


def _perceive_whole(teacher, card, rec):
    """The teacher's own per-token outputs in a window that ends at the recording's end."""
    spec = WindowSpec(**card["data"])
    item = window_signals(rec.teacher_mel, 0.0, rec.teacher_frames, rec.frame_times_s, 0.0, SECONDS, spec,
                          math.log(1e-3))
    with torch.no_grad():
        p = teacher.perceive(collate([item]))
    return item, p


def test_tracks_are_what_the_teacher_says_in_its_own_window(teacher_and_windows):
    teacher, card, view, windows = teacher_and_windows
    rec = windows.recordings[0]
    item, p = _perceive_whole(teacher, card, rec)
    valid = p["audio_valid"][0].numpy()
    token_ends = item["audio_end_s"] - 0.5 * (valid.size - 1 - np.arange(valid.size))
    track = sound_track(teacher, rec.teacher_mel, 0)
    logits, _ = track.at(np.round(token_ends[valid] * 1000).astype(np.int64))
    np.testing.assert_allclose(logits, p["sound_logits"][0].numpy()[valid], atol=1e-4)

    fvalid = item["frame_valid"]
    slots = np.round(SECONDS * 1000 - 1000 / view.frame_hz * (fvalid.size - 1 - np.arange(fvalid.size))).astype(np.int64)
    ftrack = frame_track(teacher, rec.teacher_frames, rec.frame_times_s, rec.duration_s, int(1000 / view.frame_hz), 0)
    flogits, _ = ftrack.at(slots[fvalid])
    np.testing.assert_allclose(flogits, p["frame_logits"][0].numpy()[fvalid], atol=1e-4)
    with pytest.raises(KeyError):
        track.at(250)  # off the grid of offset 0


def test_window_targets_pool_the_tokens_that_tile_each_window(teacher_and_windows):
    teacher, card, view, windows = teacher_and_windows
    logits, feats = teacher_window_targets(teacher, windows)
    assert logits.shape == (len(windows), len(STUDENT_LABELS)) and feats.shape == (len(windows), 2 * teacher.cfg.d_model)
    rec = windows.recordings[0]
    item, p = _perceive_whole(teacher, card, rec)
    n_tok = p["sound_logits"].shape[1]
    for k in (0, 7, 12, len(windows) - 1):
        e = float(windows.windows[k, 1])
        if abs(e * 2 - round(e * 2)) > 1e-9 or abs(e * view.frame_hz - round(e * view.frame_hz)) > 1e-9:
            continue  # compare where the recording-end window's grids hold the student window's tokens
        j = n_tok - 1 - int(round((SECONDS - e) / 0.5))
        expected_sound = p["sound_logits"][0, j - 1 : j + 1].amax(0)
        np.testing.assert_allclose(logits[k, : len(SOUND_LABELS)], expected_sound, atol=1e-4)
        slot = p["frame_logits"].shape[1] - 1 - int(round((SECONDS - e) * view.frame_hz))
        np.testing.assert_allclose(logits[k, len(SOUND_LABELS):], p["frame_logits"][0, slot], atol=1e-4)
    # a window off the 0.5 s grid reads the other offset's tokens: still defined, and different
    off = [k for k in range(len(windows)) if abs(windows.windows[k, 1] * 2 - round(windows.windows[k, 1] * 2)) > 1e-9]
    assert off and torch.isfinite(logits[off]).all()


def test_audio_only_windows_get_sound_targets_only(world, teacher_dir):
    teacher, _, card = load_teacher(teacher_dir)
    windows = load_split(load_dataset(world), "val", audio_s=1.0, stride_s=0.5, teacher_view=TeacherView.from_card(card),
                         frame_size_px=None, max_recordings=1)
    logits, feats = teacher_window_targets(teacher, windows)
    assert logits.shape == (len(windows), len(SOUND_LABELS)) and feats.shape[1] == teacher.cfg.d_model
    assert windows.label_mask[:, len(SOUND_LABELS):].sum() == 0  # no video decoded: frame labels unknown


def test_hard_labels_follow_the_teachers_perception_targets(teacher_and_windows):
    _, _, _, windows = teacher_and_windows
    # test recording kd_06: phone_ring 0.5-1.7 s, then chop on screen 2.0-3.5 s (tests/helpers/distill_world.py)
    rec = windows.recordings[0]
    assert rec.id == "kd_06"
    row = {round(float(e), 2): k for k, (_, e) in enumerate(windows.windows)}
    ring, chop = STUDENT_LABELS.index("phone_ring"), STUDENT_LABELS.index("chop")
    assert windows.labels[row[1.0], ring] == 1 and windows.label_mask[row[1.0], ring] == 1
    assert windows.labels[row[3.0], ring] == 0 and windows.label_mask[row[3.0], ring] == 1
    assert windows.labels[row[3.0], chop] == 1 and windows.label_mask[row[3.0], chop] == 1  # the frame at 3.0 s
    assert windows.label_mask[row[2.0], chop] == 0  # the frame at the action's start: neither on nor off
    assert windows.labels[row[4.0], chop] == 0 and windows.label_mask[row[4.0], chop] == 1
    assert len(FRAME_LABELS) == len(STUDENT_LABELS) - len(SOUND_LABELS)


def test_onset_emphasis_weighs_the_windows_that_hold_a_sounds_beginning(teacher_and_windows):
    _, _, _, windows = teacher_and_windows
    # kd_06: knock from 4.5 s; windows end every 0.25 s from 1.0 s (the first full window)
    w = windows.onset_emphasis(0.5, 3.0, len(SOUND_LABELS))
    assert w.shape == (len(windows), len(SOUND_LABELS))
    knock = SOUND_LABELS.index("knock")
    emphasised = [(float(e), SOUND_LABELS[c]) for (_, e), row in zip(windows.windows, w) for c in np.flatnonzero(row > 1)]
    assert emphasised == [(4.5, "knock"), (4.75, "knock")]  # onset 4.5 in (end - 0.5, end]
    assert set(np.unique(w)) == {1.0, 4.0} and w[:, knock].sum() == len(windows) - 2 + 8.0
    assert (windows.onset_emphasis(0.25, 3.0, len(SOUND_LABELS)) > 1).sum() == 1  # 4.5 only
