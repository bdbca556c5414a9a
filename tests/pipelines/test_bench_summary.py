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
