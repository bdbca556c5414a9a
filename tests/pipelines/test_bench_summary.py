"""`earshot bench`'s summary rows for the trigger (pipelines/bench.py), from a bench_trigger.py result."""
from pipelines.bench import _trigger_summary


def _iv(v, lo, hi):
    return {"value": v, "lo": lo, "hi": hi, "n": 100, "n_groups": 10, "p_value": None}


def _result(audible=True):
    test = {"event_recall": _iv(0.888, 0.867, 0.91), "fa_per_hour_background": _iv(1.5, 0.0, 4.0),
            "hours_background": 2.0}
    if audible:
        test["event_recall_audible"] = _iv(0.929, 0.914, 0.943)
    return {"detector": {"test": test, "targets": {"recall": 0.9, "fa_per_hour": 5.0, "met": False}},
            "camera": {"camera_on_share": _iv(0.434, 0.417, 0.45), "oracle_share": _iv(0.731, 0.706, 0.755),
                       "target": 0.3}}


def test_the_trigger_rows_carry_recall_on_all_and_on_audible_events_with_the_target():
    rows = {name: (value, target) for name, value, target in _trigger_summary(_result())}
    assert rows["trigger event recall (held-out)"] == ("88.8 [86.7, 91.0]%", ">= 90%")
    assert rows["trigger recall, audible events (>= -5 dB)"][0] == "92.9 [91.4, 94.3]%"
    assert rows["trigger false triggers / h (background)"] == ("1.5 [0.0, 4.0]", "<= 5")
    assert rows["camera on under audio_trigger"][1] == "<= 30%"


def test_an_older_report_without_audible_recall_still_summarises():
    names = [name for name, _, _ in _trigger_summary(_result(audible=False))]
    assert "trigger event recall (held-out)" in names
    assert not any("audible" in n for n in names)


def test_query_success_is_shown_with_its_never_on_control():
    r = _result()
    r["camera"]["query_success"] = {"queries": 192, "ratio": _iv(1.019, 0.875, 1.154),
                                    "never_on_ratio": _iv(0.981, 0.855, 1.103), "camera_matters": False,
                                    "target": 0.95}
    rows = {name: (value, target) for name, value, target in _trigger_summary(r)}
    value, target = rows["query success under the trigger's camera vs always-on (192 traced queries)"]
    assert value.startswith("101.9 [87.5, 115.4]% (never-on control 98.1 [85.5, 110.3]%")
    assert "does not matter" in value and target == ">= 95%"


def test_the_reports_camera_paragraphs_carry_the_share_and_query_success_with_its_control():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("report", Path(__file__).resolve().parents[2] / "scripts" / "report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    r = _result()
    r["camera"].update(recordings=[{}] * 32, met=False)
    r["camera_important"] = {"camera_on_share": _iv(0.153, 0.145, 0.161), "oracle_share": _iv(0.216, 0.203, 0.229),
                             "target": 0.3, "met": True, "wake_labels": ["alarm", "knock"],
                             "query_success": {"queries": 192, "recordings": 32, "trigger": _iv(0.276, 0.208, 0.349),
                                               "always_on": _iv(0.271, 0.214, 0.328),
                                               "never_on": _iv(0.266, 0.198, 0.333),
                                               "ratio": _iv(1.019, 0.875, 1.154),
                                               "never_on_ratio": _iv(0.981, 0.855, 1.103),
                                               "camera_matters": False, "target": 0.95}}
    text = report.camera_paragraphs(r)
    assert len(text) == 3
    assert "43.4 [41.7, 45.0]%" in text[0] and "NOT met" in text[0]
    assert "15.3 [14.5, 16.1]%" in text[1] and "met" in text[1]
    assert "101.9 [87.5, 115.4]% of it" in text[2] and "never on: 26.6 [19.8, 33.3]%" in text[2]
    assert "does not matter" in text[2]
    r["camera_important"]["query_success"]["camera_matters"] = True
    assert report.camera_paragraphs(r)[2].endswith("the camera matters for these questions.")
    del r["camera_important"]
    assert len(report.camera_paragraphs(r)) == 1


def test_the_delay_and_the_early_stage_rows_when_the_report_has_them():
    r = _result()
    assert not any("onset" in name for name, _, _ in _trigger_summary(r))  # an older report: no rows
    t = r["detector"]["test"]
    t["delay_s"] = {"p50": _iv(0.25, 0.24, 0.26), "p95": _iv(0.92, 0.66, 1.43)}
    r["detector"]["early_stage"] = {
        "shift": -3.0, "fires_per_hour_budget": 60.0, "fires_per_hour_background": _iv(41.0, 30.0, 55.0),
        "fires_per_hour_labelled": _iv(310.0, 280.0, 340.0),
        "delay_s": {"first_fire": {"p50": _iv(0.24, 0.23, 0.25), "p95": _iv(0.5, 0.4, 0.62)}}}
    rows = {name: (value, target) for name, value, target in _trigger_summary(r)}
    assert rows["trigger onset -> first trigger p50 / p95 (ms)"][0] == "250 [240, 260] / 920 [660, 1430]"
    assert rows["early stage (logit shift -3): fires / h outside events, background / labelled"] == (
        "41.0 [30.0, 55.0] / 310 [280, 340]", "<= 60 (val)")
    assert rows["onset -> first fire, early or trigger, p50 / p95 (ms)"][0] == "240 [230, 250] / 500 [400, 620]"


def test_chaos_rows_split_silent_losses_from_late_verdicts():
    from pipelines.bench import _reliability_summary

    chaos = {"silently_lost": 0, "submitted": 12000, "late_verdicts": 8, "late_ms_max": 5.1}
    rows = {name: value for name, value, _ in _reliability_summary({"chaos": chaos})}
    assert rows["chaos (worker kill -9, broker restart): requests silently lost"] == "0 of 12,000"
    assert rows["chaos: client timeouts whose server verdict came late (max ms late)"] == "8 (5.1 ms)"
    burst = {"requests": 1000, "deadline_ms": 300, "reps": [{}, {}], "late_verdicts": 12, "late_ms_max": 9.25,
             "silently_lost": 0}
    [(name, value, target)] = _reliability_summary({"burst": burst})
    assert name.startswith("burst (2 x 1000 at once, 300 ms)") and value == "12 of 2,000 (9.2 ms) / 0"
    older = {name for name, _, _ in _reliability_summary({"chaos": {"silently_lost": 1, "submitted": 10}})}
    assert not any("late" in n for n in older)  # a report from before the split still summarises
