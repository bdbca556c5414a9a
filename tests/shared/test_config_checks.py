"""shared.config: the range/choice/threads checks every schema uses, and the shared sections."""
import math

import pytest

from shared.config import (MAX_THREADS, ConfigError, OptimConfig, TrackingConfig, check_choice, check_range,
                           check_threads)


@pytest.mark.parametrize("kwargs, value, message", [
    (dict(lo=0.0, hi=1.0, lo_open=True), 0.0, "k: must be in (0, 1], got 0.0"),
    (dict(lo=0.0, hi=1.0, hi_open=True), 1.0, "k: must be in [0, 1), got 1.0"),
    (dict(lo=2.0, hi=10.0, unit="s", note="the model's clip"), 12.0, "k: must be in [2, 10] s (the model's clip), got 12.0"),
    (dict(lo=0.0, note="0 = off"), -1.0, "k: must be >= 0 (0 = off), got -1.0"),
    (dict(lo=0.0, lo_open=True), 0.0, "k: must be > 0, got 0.0"),
    (dict(hi=5), 6, "k: must be <= 5, got 6"),
    (dict(lo=1, hi=10_000_000), 0, "k: must be in [1, 1e7], got 0"),
    (dict(lo=0, hi=2**31, hi_open=True), 2**31, "k: must be in [0, 2^31), got 2147483648"),
    (dict(lo=0.0, hi=1.0), math.nan, "k: must be in [0, 1], got nan"),
])
def test_check_range_names_key_range_unit_note_and_value(kwargs, value, message):
    with pytest.raises(ConfigError) as exc:
        check_range("k", value, **kwargs)
    assert str(exc.value) == message


@pytest.mark.parametrize("kwargs, value", [
    (dict(lo=0.0, hi=1.0), 0.0), (dict(lo=0.0, hi=1.0), 1.0), (dict(lo=0.0, hi=1.0, lo_open=True), 1e-9),
    (dict(lo=1), 10**9), (dict(hi=0.5), -3.0),
])
def test_check_range_accepts_values_inside(kwargs, value):
    check_range("k", value, **kwargs)


def test_check_choice_and_threads():
    check_choice("mode", "server", ("server", "broker"))
    with pytest.raises(ConfigError, match=r"^mode: must be one of \('server', 'broker'\), got 'srv'$"):
        check_choice("mode", "srv", ("server", "broker"))
    check_threads(0)
    check_threads(MAX_THREADS)
    with pytest.raises(ConfigError, match=r"^threads: must be in \[0, 256\]"):
        check_threads(-1)
    with pytest.raises(ConfigError, match=r"^workers: must be in \[0, 256\]"):
        check_threads(257, "workers")


def test_shared_sections_validate():
    assert OptimConfig().beta2 == 0.98 and TrackingConfig().artifact_location is None
    with pytest.raises(ConfigError, match=r"^optim.lr: must be in \(0, 1\]"):
        OptimConfig(lr=0.0)
    with pytest.raises(ConfigError, match=r"^optim.beta2: must be in \[0, 1\)"):
        OptimConfig(beta2=1.0)
    with pytest.raises(ConfigError, match=r"^mlflow.experiment:"):
        TrackingConfig(experiment=" ")
