"""The optional .tflite path (litert-torch + ai-edge-litert, the 'tflite' extra).

Skipped only when the extra is absent. Tolerance: .tflite vs eager fp32,
max |difference| of output probabilities ``ATOL_TFLITE`` = 1e-4 (measured ~1e-7).
"""
import sys

import numpy as np
import pytest

from distill.tflite import EXTRA_HINT, tflite_status

AVAILABLE, WHY = tflite_status()
ATOL_TFLITE = 1e-4
needs_extra = pytest.mark.skipif(not AVAILABLE, reason=WHY)


def test_status_names_the_extra_when_it_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "litert_torch", None)  # import raises ImportError
    ok, why = tflite_status()
    assert not ok and "litert_torch" in why and EXTRA_HINT in why


@needs_extra
@pytest.mark.slow  # needs the tiny distill export
@pytest.mark.parametrize("student", ["trigger"])  # the av export fixture skips .tflite to save time (conftest)
def test_tflite_program_has_a_card_and_agrees_with_eager_on_real_recordings(student, request, world):
    from distill.io import load_student
    from distill.programs import EagerProgram, program_outputs
    from distill.tflite import TfliteProgram
    from shared.model_card import load_model_card
    from test_export import _test_windows

    cards, folder = request.getfixturevalue(f"{student}_export")
    run = request.getfixturevalue(f"{student}_run")
    file = f"{student}_litert_fp32.tflite"
    card = load_model_card(folder / f"{student}_litert_fp32.json", check_program=True)
    assert card == cards[file] and card.format == "tflite" and card.backend == "litert" and card.precision == "fp32"
    model, _, _ = load_student(run.out)
    inputs = _test_windows(run, world)
    eager = program_outputs(EagerProgram(model), inputs)
    tfl = program_outputs(TfliteProgram(folder / file), inputs)
    for e, t in zip(eager, tfl):
        np.testing.assert_allclose(t, e, rtol=0, atol=ATOL_TFLITE)
