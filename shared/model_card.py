"""Model cards: the JSON that ships next to every exported on-device program.

``earshot export`` writes one card per program (``trigger_xnnpack_int8.pte``
-> ``trigger_xnnpack_int8.json``); both edge runtimes (Python and
``edge/native``) read it to know how to feed the program and how to read its
outputs, without importing ``distill``. This module is the schema: the reader,
the validation and the writer. It imports nothing heavy (no torch), so the
edge can use it on its own.

Fields (``card_version`` 1)::

    card_version      1
    name              the program's role: "trigger" | "av"
    program           file name of the program, in the card's folder
    format            "pte" | "tflite"
    backend           "xnnpack" (ExecuTorch) | "litert"
    precision         "fp32" | "int8" (int8: weights and activations of the
                      CNN; the log-mel front end stays float32)
    size_bytes        size of the program file
    sha256            hex digest of the program file
    inputs, outputs   [{name, dtype, shape, description}] in call order;
                      dtype one of int16, uint8, int8, float32
    labels            output labels, in output order (shared.labels names)
    thresholds        {label: decision threshold in [0, 1]} for every label,
                      chosen on the validation split; 1 turns the label off
                      (never over it, even at an int8 score of exactly 1.0)
    threshold_rule    how they were chosen (text)
    refractory_s      (optional, default 0) the trigger's refractory hold: a
                      label that fired is released only after this many
                      seconds below its threshold (shared/trigger.py); both
                      runtimes apply it
    early_thresholds  (optional, default null) {label: threshold} of the
                      trigger's *early* stage, each at or below the label's
                      threshold, chosen on the validation split for a budget
                      of early fires per hour: a label over it (with the same
                      refractory hold) is a sound that has probably started;
                      ``audio_trigger`` sends the audio in hand to the cloud
                      at once, before the trigger is sure (docs/edge.md,
                      "The early stage"). Null: no early stage
    features          the log-mel front end inside the program:
                      shared.features.FeatureConfig.to_dict() plus "trim_bins"
    audio_window_s    seconds of PCM per call
    frame_size_px     square frame size (null for audio-only programs)
    num_parameters    trainable parameters
    macs              multiply-accumulates per call, front end included
    metrics           accuracy on held-out (test) data: at least
                      macro_f1, teacher_macro_f1 (windows), retention (the
                      program's pair accuracy on the counterfactual bench's
                      event probes over the teacher's, distill/probes.py;
                      null without a teacher or a bench), agreement_f1,
                      n_windows, split; free-form extras
    teacher           provenance of the distilled-from teacher (free-form)
    taxonomy_version  shared.labels.TAXONOMY_VERSION the labels come from
    extra             free-form (MLflow run id, parity figures, ...)

Errors name the field: ``ModelCardError("thresholds.speech: must be in [0, 1], got 1.5")``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from shared.config import UserError

__all__ = [
    "CARD_VERSION",
    "FORMATS",
    "BACKENDS",
    "PRECISIONS",
    "DTYPES",
    "REQUIRED_METRICS",
    "FEATURE_KEYS",
    "ModelCardError",
    "TensorSpec",
    "ModelCard",
    "copy_with_card",
    "load_model_card",
    "save_model_card",
    "card_path_for",
    "file_sha256",
]

CARD_VERSION = 1
FORMATS = ("pte", "tflite")
BACKENDS = ("xnnpack", "litert")
PRECISIONS = ("fp32", "int8")
DTYPES = ("int16", "uint8", "int8", "float32")
REQUIRED_METRICS = ("macro_f1", "teacher_macro_f1", "retention", "agreement_f1", "n_windows", "split")
#: FeatureConfig fields a card must carry to rebuild the front end (numbers),
#: plus trim_bins (bool).
FEATURE_KEYS = ("sample_rate_hz", "window_ms", "hop_ms", "n_fft", "n_mels", "fmin_hz", "fmax_hz", "log_offset")


class ModelCardError(UserError, ValueError):
    """A card that does not follow the schema; the message starts with the field."""


def _fail(key: str, msg: str) -> None:
    raise ModelCardError(f"{key}: {msg}")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a program."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))  # lists from JSON or io_spec compare equal

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "TensorSpec":
        if not isinstance(data, Mapping):
            _fail(where, f"expected an object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"name", "dtype", "shape", "description"})
        if unknown:
            _fail(where, f"unknown keys {unknown}")
        name, dtype, shape = data.get("name"), data.get("dtype"), data.get("shape")
        if not isinstance(name, str) or not name:
            _fail(f"{where}.name", f"expected a non-empty string, got {name!r}")
        if dtype not in DTYPES:
            _fail(f"{where}.dtype", f"must be one of {DTYPES}, got {dtype!r}")
        if not isinstance(shape, (list, tuple)) or not shape or not all(_is_int(d) and d >= 1 for d in shape):
            _fail(f"{where}.shape", f"expected a non-empty list of positive ints, got {shape!r}")
        desc = data.get("description", "")
        if not isinstance(desc, str):
            _fail(f"{where}.description", "expected a string")
        return cls(name, dtype, tuple(shape), desc)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "description": self.description}


@dataclass
class ModelCard:
    """A validated model card (see the module docstring for the fields)."""

    name: str
    program: str
    format: str
    backend: str
    precision: str
    size_bytes: int
    sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    labels: list[str]
    thresholds: dict[str, float]
    threshold_rule: str
    features: dict[str, Any]
    audio_window_s: float
    frame_size_px: int | None
    num_parameters: int
    macs: int
    metrics: dict[str, Any]
    teacher: dict[str, Any] = field(default_factory=dict)
    taxonomy_version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    refractory_s: float = 0.0
    early_thresholds: dict[str, float] | None = None
    card_version: int = CARD_VERSION

    def __post_init__(self) -> None:
        self.validate()

    # --- validation -------------------------------------------------------------------

    def validate(self) -> None:
        """Check every field; raises `ModelCardError` naming the first bad one."""
        if self.card_version != CARD_VERSION:
            _fail("card_version", f"unsupported {self.card_version!r} (this reader knows {CARD_VERSION})")
        for key in ("name", "program", "threshold_rule"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                _fail(key, f"expected a non-empty string, got {getattr(self, key)!r}")
        if "/" in self.program or "\\" in self.program:
            _fail("program", f"must be a file name in the card's folder, got {self.program!r}")
        if self.format not in FORMATS:
            _fail("format", f"must be one of {FORMATS}, got {self.format!r}")
        if self.backend not in BACKENDS:
            _fail("backend", f"must be one of {BACKENDS}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            _fail("precision", f"must be one of {PRECISIONS}, got {self.precision!r}")
        if not Path(self.program).suffix == f".{self.format}":
            _fail("program", f"{self.program!r} does not end in .{self.format}")
        for key in ("size_bytes", "num_parameters", "macs"):
            if not _is_int(getattr(self, key)) or getattr(self, key) < 1:
                _fail(key, f"expected a positive int, got {getattr(self, key)!r}")
        if not isinstance(self.sha256, str) or len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            _fail("sha256", "expected 64 lowercase hex digits")
        for key in ("inputs", "outputs"):
            specs = getattr(self, key)
            if not specs:
                _fail(key, "must list at least one tensor")
            names = [s.name for s in specs]
            if len(set(names)) != len(names):
                _fail(key, f"duplicate tensor names {names}")
        if not self.labels or not all(isinstance(x, str) and x for x in self.labels):
            _fail("labels", "expected a non-empty list of label names")
        if len(set(self.labels)) != len(self.labels):
            _fail("labels", "duplicate label names")
        if self.outputs[0].shape[-1] != len(self.labels):
            _fail("outputs", f"{self.outputs[0].name} has {self.outputs[0].shape[-1]} values for {len(self.labels)} labels")
        self._check_per_label("thresholds", self.thresholds, "missing (every label needs a threshold)")
        if not _is_number(self.refractory_s) or not 0.0 <= self.refractory_s <= 60.0:
            _fail("refractory_s", f"must be a number of seconds in [0, 60], got {self.refractory_s!r}")
        if self.early_thresholds is not None:
            if not isinstance(self.early_thresholds, Mapping):
                _fail("early_thresholds", "expected an object or null")
            self._check_per_label("early_thresholds", self.early_thresholds, "missing (every label needs one, 1 for none)")
            for label, value in self.early_thresholds.items():
                if value > self.thresholds[label]:
                    _fail(f"early_thresholds.{label}",
                          f"{value!r} is above the label's threshold {self.thresholds[label]!r} (an early stage fires first)")
        if not isinstance(self.features, Mapping):
            _fail("features", "expected an object")
        for key in FEATURE_KEYS:
            if not _is_number(self.features.get(key)):
                _fail(f"features.{key}", f"expected a number, got {self.features.get(key)!r}")
        if not isinstance(self.features.get("trim_bins"), bool):
            _fail("features.trim_bins", f"expected true or false, got {self.features.get('trim_bins')!r}")
        if not _is_number(self.audio_window_s) or self.audio_window_s <= 0:
            _fail("audio_window_s", f"expected a positive number, got {self.audio_window_s!r}")
        if self.frame_size_px is not None and (not _is_int(self.frame_size_px) or self.frame_size_px < 1):
            _fail("frame_size_px", f"expected a positive int or null, got {self.frame_size_px!r}")
        if not isinstance(self.metrics, Mapping):
            _fail("metrics", "expected an object")
        for key in REQUIRED_METRICS:
            if key not in self.metrics:
                _fail(f"metrics.{key}", "missing")
        for key, value in self.metrics.items():
            if value is not None and not isinstance(value, (int, float, str)):
                _fail(f"metrics.{key}", f"expected a number, a string or null, got {type(value).__name__}")
            if isinstance(value, float) and not math.isfinite(value):
                _fail(f"metrics.{key}", f"must be finite or null (JSON has no NaN), got {value}")
        if not _is_int(self.taxonomy_version) or self.taxonomy_version < 1:
            _fail("taxonomy_version", f"expected a positive int, got {self.taxonomy_version!r}")
        for key in ("teacher", "extra"):
            if not isinstance(getattr(self, key), Mapping):
                _fail(key, "expected an object")

    def _check_per_label(self, key: str, values: Mapping[str, Any], missing_message: str) -> None:
        """A {label: value in [0, 1]} map with exactly this card's labels (``thresholds``, ``early_thresholds``)."""
        missing = [x for x in self.labels if x not in values]
        if missing:
            _fail(f"{key}.{missing[0]}", missing_message)
        for label, value in values.items():
            if label not in self.labels:
                _fail(f"{key}.{label}", "is not one of the labels")
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                _fail(f"{key}.{label}", f"must be in [0, 1], got {value!r}")

    # --- conversion ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any) -> "ModelCard":
        """Validate a parsed card; unknown top-level keys are an error (a newer writer)."""
        if not isinstance(data, Mapping):
            raise ModelCardError(f"card: expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            _fail(unknown[0], "unknown field (a card from a newer Earshot?)")
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        for key in required:
            if key not in data:
                _fail(key, "missing")
        kwargs = dict(data)
        for key in ("inputs", "outputs"):
            if not isinstance(kwargs[key], list):
                _fail(key, "expected a list")
            kwargs[key] = [TensorSpec.from_dict(t, f"{key}[{i}]") for i, t in enumerate(kwargs[key])]
        if not isinstance(kwargs["labels"], list):
            _fail("labels", "expected a list")
        if not isinstance(kwargs["thresholds"], Mapping):
            _fail("thresholds", "expected an object")
        kwargs["labels"], kwargs["thresholds"] = list(kwargs["labels"]), dict(kwargs["thresholds"])
        if isinstance(kwargs.get("early_thresholds"), Mapping):
            kwargs["early_thresholds"] = dict(kwargs["early_thresholds"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if out["early_thresholds"] is None:  # cards without an early stage read as before it existed
            del out["early_thresholds"]
        out["inputs"] = [t.to_dict() for t in self.inputs]
        out["outputs"] = [t.to_dict() for t in self.outputs]
        return out

    # --- use ----------------------------------------------------------------------------

    def threshold_vector(self) -> list[float]:
        """Thresholds in output (label) order."""
        return [float(self.thresholds[x]) for x in self.labels]

    def early_threshold_vector(self) -> list[float] | None:
        """The early stage's thresholds in output (label) order; None when the card has none."""
        return None if self.early_thresholds is None else [float(self.early_thresholds[x]) for x in self.labels]

    def decide(self, probs: Any) -> list[str]:
        """Labels whose probability (a sequence in label order) reaches its threshold (a threshold
        of 1 never: `shared.trigger.over_threshold`)."""
        from shared.trigger import over_threshold

        over = over_threshold([float(p) for p in probs], self.threshold_vector())
        return [x for x, o in zip(self.labels, over) if o]

    def trigger_hold(self) -> Any:
        """A fresh `shared.trigger.TriggerHold` with this card's thresholds and refractory hold."""
        from shared.trigger import TriggerHold

        return TriggerHold(self.labels, self.threshold_vector(), self.refractory_s)

    def early_hold(self) -> Any:
        """A fresh `shared.trigger.TriggerHold` for the early stage (``early_thresholds``, the same
        refractory hold), or None when the card has no early stage."""
        from shared.trigger import TriggerHold

        early = self.early_threshold_vector()
        return None if early is None else TriggerHold(self.labels, early, self.refractory_s)

    def feature_config(self) -> Any:
        """The front end as a `shared.features.FeatureConfig` (imports torch)."""
        from shared.features import FeatureConfig

        return FeatureConfig.from_dict({k: v for k, v in self.features.items() if k != "trim_bins"})

    def check_program(self, folder: str | Path) -> Path:
        """The program file next to the card, checked against size and sha256.

        Raises:
            ModelCardError: missing file, or size / digest differ from the card.
        """
        path = Path(folder) / self.program
        if not path.is_file():
            _fail("program", f"{path} does not exist")
        if path.stat().st_size != self.size_bytes:
            _fail("size_bytes", f"card says {self.size_bytes}, {path} has {path.stat().st_size}")
        if file_sha256(path) != self.sha256:
            _fail("sha256", f"{path} does not match the card (a different or corrupted program)")
        return path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def card_path_for(program: str | Path) -> Path:
    """``x/trigger_xnnpack_int8.pte`` -> ``x/trigger_xnnpack_int8.json``."""
    return Path(program).with_suffix(".json")


def load_model_card(path: str | Path, *, check_program: bool = False) -> ModelCard:
    """Read and validate a card (``check_program``: also verify the program file).

    Raises:
        ModelCardError: unreadable JSON or a schema error; the message names the
            file and the field.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelCardError(f"{path}: no such model card") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"{path}: not valid JSON ({exc})") from exc
    try:
        card = ModelCard.from_dict(data)
        if check_program:
            card.check_program(path.parent)
    except ModelCardError as exc:
        raise ModelCardError(f"{path}: {exc}") from None
    return card


def save_model_card(card: ModelCard, path: str | Path) -> Path:
    """Validate and write ``card`` as indented JSON."""
    card.validate()
    path = Path(path)
    path.write_text(json.dumps(card.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def copy_with_card(program: str | Path, folder: str | Path, card: ModelCard) -> Path:
    """Copy ``program`` into ``folder`` with ``card`` (validated) as its card; returns the copy's path.

    For variants of one program that differ only in their card (other thresholds, no early stage).
    """
    import shutil

    card.validate()  # before anything is written: no program copy without its card
    program, folder = Path(program), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / program.name
    shutil.copy(program, out)
    save_model_card(card, card_path_for(out))
    return out
