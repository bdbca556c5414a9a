"""Event-level trigger metrics and the operating point (distill/detection.py, distill/operating_point.py)."""
from __future__ import annotations

import numpy as np
import pytest

from distill.detection import (TriggerStream, detection_delay, detection_delays, event_recall, false_per_hour,
                               hits_and_false, score_streams, snr_bin)
from distill.operating_point import choose_operating_point, shifted
from shared.trigger import hold_runs

HOP, AUDIO_S = 0.25, 1.0


def _stream(rid, probs, events, background=False, duration_s=None):
    probs = np.asarray(probs, np.float32)
    return TriggerStream(rid, "kitchen", 0.0, duration_s or len(probs) * HOP, probs,
                         np.asarray(events, np.float64).reshape(-1, 4), background)


def test_hits_misses_false_and_repeats():
    # label 0: event at 2.0-2.5 s (hit span: steps at t in [2.0, 3.5]); label 1: event at 6.0-6.2 s, missed
    p = np.zeros((40, 2))
    p[8, 0] = 0.9   # t = 2.25: hit
    p[12, 0] = 0.9  # t = 3.25: a second trigger on the same event (a repeat)
    p[30, 0] = 0.9  # t = 7.75: nothing of label 0 there -> false
    p[25, 1] = 0.9  # t = 6.5: label 1's event ended at 6.2, window reaches back to 5.5 -> hit
    events = [(0, 2.0, 2.5, 3.0), (1, 6.0, 6.2, -8.0)]
    trig, _ = hold_runs(p, np.array([[0.5, 0.5]]), 0.0, HOP)
    detected, false, repeats = hits_and_false(trig, np.asarray(events), HOP, AUDIO_S)
    assert detected.tolist() == [[True, True]]
    assert false.tolist() == [[1, 0]] and repeats.tolist() == [[1, 0]]
    # with a 1 s hold the repeat at 3.25 s is gone (below for 0.75 s only)
    trig, _ = hold_runs(p, np.array([[0.5, 0.5]]), 1.0, HOP)
    _, false, repeats = hits_and_false(trig, np.asarray(events), HOP, AUDIO_S)
    assert repeats.tolist() == [[0, 0]] and false.tolist() == [[1, 0]]


def test_a_trigger_before_the_onset_or_after_the_window_is_false():
    p = np.zeros((40, 1))
    p[6, 0] = 0.9   # t = 1.75, event starts at 2.0
    p[20, 0] = 0.9  # t = 5.25 > offset 4.0 + 1 s window
    trig, _ = hold_runs(p, np.array([[0.5]]), 0.0, HOP)
    detected, false, _ = hits_and_false(trig, np.array([[0, 2.0, 4.0, 0.0]]), HOP, AUDIO_S)
    assert detected.tolist() == [[False]] and false.tolist() == [[2]]


def test_rates_and_recall_aggregate_over_recordings_with_intervals():
    hour = int(3600 / HOP)
    streams = []
    for r in range(4):  # each: 1 h background with r + 1 false triggers
        p = np.zeros((hour, 1))
        p[np.arange(r + 1) * 100 + 10, 0] = 0.9
        streams.append(_stream(f"bg{r}", p, [], background=True))
    p = np.zeros((40, 1))
    p[9, 0] = 0.9
    streams.append(_stream("lab", p, [(0, 2.0, 2.5, 10.0), (0, 6.0, 6.5, -10.0)]))
    sc = score_streams(streams, np.array([[0.5]]), 0.0, HOP, AUDIO_S)
    fa = false_per_hour(sc, 0, streams=lambda s: s.background)
    assert fa.value == pytest.approx(10 / 4) and fa.n_groups == 4 and fa.lo < fa.value < fa.hi
    rec = event_recall(sc, 0)
    assert rec.value == 0.5 and rec.n == 2
    low = event_recall(sc, 0, select=lambda ev: ev[:, 3] < 0)
    assert low.value == 0.0 and snr_bin(-10.0) == "<-5" and snr_bin(12.0) == "10..20" and snr_bin(None) == "unknown"


def test_operating_point_detects_most_within_the_false_trigger_budget():
    rng = np.random.default_rng(0)
    streams = []
    for r in range(6):
        n = 400
        p = rng.random((n, 2)) * np.array([0.3, 0.85])  # label 1's noise reaches 0.85; label 0's stays under 0.3
        events = []
        for k in range(4):
            i = 40 + 90 * k
            p[i, 0] = 0.6  # label 0 events score 0.6: separable
            p[i + 3, 1] = 0.95  # label 1 events score 0.95, above its noise
            events += [(0, (i + 1) * HOP - 0.1, (i + 1) * HOP + 0.1, 0.0), (1, (i + 4) * HOP - 0.1, (i + 4) * HOP, 0.0)]
        streams.append(_stream(f"r{r}", p, events))
    hours = sum(s.hours for s in streams)
    op = choose_operating_point(streams, 2, refractory_s=0.0, hop_s=HOP, audio_s=AUDIO_S, fa_per_hour=2.0 / hours)
    assert op.val_false <= 2 and op.val_events == 48
    assert op.rule == "per_label" and op.val_detected > op.single_detected
    assert op.thresholds[0] <= 0.6 < op.thresholds[1] + 0.36 and op.thresholds[1] > 0.85
    th = shifted(op.thresholds, [-2.0, 0.0, 2.0])
    assert th[1] == pytest.approx(op.thresholds) and (th[0] < th[1]).all() and (th[2] > th[1]).all()
    assert shifted([1.0], [-5.0])[0, 0] == 1.0  # off stays off


def test_the_budget_counts_background_hours_unless_told_to_count_confusions_too():
    """A label that fires on another label's sound (a confusion, on labelled recordings) spends
    the budget only under ``budget_on="all"``; background triggers spend it either way."""
    n = 400
    lab = np.zeros((n, 2))
    events = []
    for k in range(4):
        i = 40 + 90 * k
        lab[i, 0] = 0.97            # label 0's own events
        lab[i + 40, 0] = 0.97       # label 0 again during label 1's sound: a confusion
        lab[i + 40, 1] = 0.99
        events += [(0, (i + 1) * HOP - 0.1, (i + 1) * HOP + 0.1, 0.0),
                   (1, (i + 41) * HOP - 0.1, (i + 41) * HOP + 0.1, 0.0)]
    bg = np.zeros((4 * 3600 * 4, 2))  # 4 h of background, quiet
    streams = [_stream("lab", lab, events), _stream("bg", bg, [], background=True)]
    kw = dict(refractory_s=0.0, hop_s=HOP, audio_s=AUDIO_S, fa_per_hour=0.25)  # 1 false trigger on 4 h
    op_bg = choose_operating_point(streams, 2, budget_on="background", **kw)
    op_all = choose_operating_point(streams, 2, budget_on="all", **kw)
    assert op_bg.budget_on == "background" and op_bg.val_hours == pytest.approx(4.0)
    assert op_bg.val_detected == 8 and op_bg.thresholds[0] <= 0.97  # label 0 on: confusions are not spent
    assert op_bg.val_confusions == 4 and op_bg.confusions_per_hour_budget is None
    # a confusion budget of 4 per labelled hour (100 s here: 0.44 confusions) keeps label 0 off
    op_conf = choose_operating_point(streams, 2, budget_on="background", confusions_per_hour=4.0, **kw)
    assert op_conf.val_detected == 4 and op_conf.val_confusions == 0 and op_conf.thresholds[0] > 0.97
    # ... and one of 200 per labelled hour (5.6) lets it on
    op_loose = choose_operating_point(streams, 2, budget_on="background", confusions_per_hour=200.0, **kw)
    assert op_loose.val_detected == 8 and op_loose.val_labelled_hours == pytest.approx(100 / 3600)
    assert op_all.budget_on == "all" and op_all.val_detected == 4 and op_all.thresholds[0] > 0.97
    # no background streams: the budget falls back to everything, and says so
    assert choose_operating_point(streams[:1], 2, budget_on="background", **kw).budget_on == "all"
    with pytest.raises(ValueError, match="budget_on"):
        choose_operating_point(streams, 2, budget_on="labelled", **kw)


def test_thresholds_can_sit_above_0999_for_a_confident_trigger():
    """A trigger trained with pos_weight > 1 scores its background at 0.9992; its events at 0.99997."""
    n = 400
    p = np.full((n, 1), 0.9992)
    events = []
    for k in range(4):
        i = 40 + 90 * k
        p[i, 0] = 0.99997
        events.append((0, (i + 1) * HOP - 0.1, (i + 1) * HOP + 0.1, 0.0))
    streams = [_stream("lab", p, events)]
    op = choose_operating_point(streams, 1, refractory_s=0.0, hop_s=HOP, audio_s=AUDIO_S, fa_per_hour=0.0)
    assert op.val_detected == 4 and op.val_false == 0 and 0.9992 < op.thresholds[0] <= 0.99997


def test_detection_delay_is_onset_to_the_first_trigger_in_the_hit_span():
    # label 0: event at 2.1-3.0 s; the score crosses 0.5 at t = 2.5 and 0.3 already at t = 2.25
    p = np.zeros((40, 1))
    p[8, 0], p[9:12, 0] = 0.35, 0.9  # t = 2.25: 0.35; t = 2.5-3.0: 0.9
    p[30, 0] = 0.9                    # t = 7.75: a false trigger, no event: no delay
    events = np.asarray([(0, 2.1, 3.0, 0.0), (0, 12.0, 12.5, 0.0)])  # the second is never reached
    trig, _ = hold_runs(p, np.array([[0.5], [0.3]]), 0.0, HOP)
    d = detection_delays(trig, events, HOP, AUDIO_S)
    assert d.shape == (2, 2)
    assert d[0, 0] == pytest.approx(0.4) and d[1, 0] == pytest.approx(0.15)  # a lower threshold fires a hop earlier
    assert np.isnan(d[:, 1]).all()


def test_delay_quantiles_pool_detected_events_with_a_recording_interval():
    streams = []
    for r, step in enumerate([8, 9, 10, 11]):  # onset 2.0 s: delays 0.25, 0.5, 0.75, 1.0 s
        p = np.zeros((40, 1))
        p[step, 0] = 0.9
        streams.append(_stream(f"r{r}", p, [(0, 2.0, 3.0, 0.0), (0, 8.0, 8.5, 0.0)]))  # the 8 s event is missed
    sc = score_streams(streams, np.array([[0.5]]), 0.0, HOP, AUDIO_S)
    p95 = detection_delay(sc, 0, 0.95)
    assert p95.n == 4 and p95.n_groups == 4  # missed events are not in it
    assert p95.value == pytest.approx(np.quantile([0.25, 0.5, 0.75, 1.0], 0.95))
    assert p95.lo <= p95.value <= p95.hi and p95.lo < p95.hi
    assert detection_delay(sc, 0, 0.5, select=lambda ev: ev[:, 1] > 5) is None  # only missed events selected


def test_the_early_stage_goes_as_low_as_its_budget_of_background_fires_allows():
    from distill.operating_point import choose_early_stage

    hour = int(3600 / HOP)
    bg = np.full((hour, 1), 0.01)
    bg[[1000, 5000], 0] = 0.6          # two background blips at 0.6 in the hour
    bg[9000, 0] = 0.2                  # and one at 0.2
    lab = np.zeros((40, 1))
    lab[8:12, 0] = [0.3, 0.7, 0.95, 0.95]  # an onset at 2.0 s the trigger (0.9) hears at t = 2.75
    streams = [_stream("bg", bg, [], background=True), _stream("lab", lab, [(0, 2.0, 3.0, 0.0)])]
    kw = dict(refractory_s=0.0, hop_s=HOP, audio_s=AUDIO_S)
    strict = choose_early_stage(streams, [0.9], fires_per_hour=1.0, **kw)
    assert strict.thresholds[0] > 0.6 and strict.val_fires_per_hour <= 1.0  # stops before the 0.6 blips
    assert strict.shift == pytest.approx(-1.75)  # logit(0.9) - 1.75 = 0.447 -> p 0.61; -2.0 would be 0.55
    loose = choose_early_stage(streams, [0.9], fires_per_hour=2.0, **kw)
    assert 0.2 < loose.thresholds[0] <= 0.6 and loose.val_fires_per_hour == 2.0
    everything = choose_early_stage(streams, [0.9], fires_per_hour=100.0, **kw)
    assert everything.shift == -8.0  # (at p 0.003 the hour's 0.01 floor holds the label: one long fire)
    # a label off at the operating point stays off; a budget of 0 with blips everywhere: no early stage
    assert choose_early_stage(streams, [1.0], fires_per_hour=0.0, **kw).thresholds == [1.0]
    noisy = [_stream("bg", np.full((hour, 1), 0.95), [], background=True)]
    assert choose_early_stage(noisy, [0.9], fires_per_hour=0.0, **kw).shift == 0.0
