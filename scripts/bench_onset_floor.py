#!/usr/bin/env python
"""How early could anything on the device know a sound started? An energy-onset detector beside the trigger.

    python scripts/bench_onset_floor.py --latency runs/bench/latency_pool.json \\
        --variant "baseline: hop 0.1 s, early stage" --background data/trigger_background

The trigger's latency tail (docs/edge.md, "The early stage") is quiet sounds
the trigger is not yet sure of. This asks whether a label-free detector would
hear them sooner: per hop, the rise of the newest ``--recent-s`` of log-mel
(the trigger's own front end: 32 bands, 20 ms hop) over the median of the rest
of the last second, averaged over the ``--top-bands`` bands that rose most; it
fires over a threshold, with a 1 s refractory hold. Its threshold is chosen on
the *val* background recordings (event-free scene noise) for each budget of
false fires per background hour (``--budgets``).

On the onsets of a ``scripts/bench_latency.py`` run (its ``--json`` and one
variant), each onset's answer time with the detector is
``min(measured onset -> answer, detector delay + that onset's measured
request, network and server stages)``: the detector's fire would send the
audio in hand, like the early stage. Prints, per budget: the share of onsets
it fires on, p50/p95 of onset -> answer with recording-level 95% intervals,
the paired p95 difference, and its fires per labelled hour (each one a
request). This is an estimate from measured parts, not an end-to-end run:
the detector is not in either runtime.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.stats import bootstrap_mean, bootstrap_quantile, format_interval, paired_quantile_difference  # noqa: E402

FRAMES_PER_S = 50  # the trigger's front end: 20 ms hop


def log_mel(folder: Path) -> np.ndarray:
    """(T, 32) log-mel of a recording with the trigger's front-end settings."""
    import soundfile as sf

    from shared.features import FeatureConfig, log_mel_numpy

    x, _sr = sf.read(str(folder / "audio.wav"), dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    cfg = FeatureConfig(sample_rate_hz=16000, window_ms=16.0, hop_ms=20.0, n_fft=256, n_mels=32,
                        fmin_hz=125.0, fmax_hz=7500.0, log_offset=0.001)
    return log_mel_numpy(x, cfg)


def onset_scores(mel: np.ndarray, hop_s: float, recent_s: float, top_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """(times, scores): per hop, the newest ``recent_s`` of the last second over the rest's median."""
    step, recent = int(round(hop_s * FRAMES_PER_S)), int(round(recent_s * FRAMES_PER_S))
    times, scores = [], []
    for end in range(step, len(mel) + 1, step):
        lo = max(0, end - FRAMES_PER_S)
        if end - recent - lo < 5:
            continue
        rise = mel[end - recent:end].mean(axis=0) - np.median(mel[lo:end - recent], axis=0)
        times.append(end / FRAMES_PER_S)
        scores.append(float(np.sort(rise)[::-1][:top_bands].mean()))
    return np.asarray(times), np.asarray(scores)


def fires(times: np.ndarray, scores: np.ndarray, threshold: float, refractory_s: float = 1.0) -> list[float]:
    out, last = [], -np.inf
    for t, s in zip(times, scores):
        if s >= threshold and t - last >= refractory_s - 1e-9:
            out.append(float(t))
            last = t
    return out


def folders(root: Path, split: str | None = None) -> list[Path]:
    manifest = json.loads((root / "manifest.json").read_text())
    return [root / r["path"] for r in manifest["recordings"] if split is None or r.get("split") == split]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=Path, required=True, help="a scripts/bench_latency.py --json output")
    ap.add_argument("--variant", help="which of its variants (default: the first)")
    ap.add_argument("--background", type=Path, required=True, help="event-free recordings with a val split")
    ap.add_argument("--budgets", default="30,60,300,1000", help="false fires per val background hour")
    ap.add_argument("--hop-s", type=float, default=0.1)
    ap.add_argument("--recent-s", type=float, default=0.1)
    ap.add_argument("--top-bands", type=int, default=2)
    ap.add_argument("--json", type=Path, default=Path("runs/bench/onset_floor.json"))
    args = ap.parse_args()
    from rich.progress import track

    bench = json.loads(args.latency.read_text())
    name = args.variant or next(iter(bench["variants"]))
    if name not in bench["variants"]:
        ap.error(f"--variant {name!r}: not in {list(bench['variants'])}")
    rows = {(r["recording"], r["onset_s"], r["label"]): r for r in bench["variants"][name]["rows"]
            if r.get("total_ms") is not None}
    world = Path(bench["world"])

    background = [onset_scores(log_mel(p), args.hop_s, args.recent_s, args.top_bands)
                  for p in track(folders(args.background, "val"), description="val background")]
    bg_hours = sum(len(t) * args.hop_s for t, _ in background) / 3600.0
    labelled = []
    for p in track(folders(world), description="latency world"):
        times, scores = onset_scores(log_mel(p), args.hop_s, args.recent_s, args.top_bands)
        labelled.append((p.name, times, scores, json.loads((p / "annotations.json").read_text())["events"]))
    lab_hours = sum(len(t) * args.hop_s for _, t, _, _ in labelled) / 3600.0

    out = {"args": {k: str(v) for k, v in vars(args).items()}, "variant": name, "background_val_hours": bg_hours,
           "budgets": []}
    print(f"{len(rows)} answered onsets of '{name}' ({world.name}); {bg_hours:.2f} h of val background")
    for budget in [float(b) for b in args.budgets.split(",")]:
        threshold = next((thr for thr in np.arange(0.2, 8.0, 0.05)
                          if sum(len(fires(t, s, thr)) for t, s in background) / bg_hours <= budget), None)
        if threshold is None:
            print(f"budget {budget:g}/h: no threshold up to 8 stays within it")
            continue
        bg_rate = sum(len(fires(t, s, threshold)) for t, s in background) / bg_hours
        measured, combined, found, groups, n_fires = [], [], [], [], 0
        for rec, times, scores, events in labelled:
            fired = fires(times, scores, threshold)
            n_fires += len(fired)
            for e in events:
                row = rows.get((rec, e["onset_s"], e["label"]))
                if row is None:
                    continue
                total = row["total_ms"]
                rest = total - row["stages_ms"]["onset -> trigger fires"]
                hit = [t for t in fired if e["onset_s"] - 1e-9 <= t <= e["offset_s"] + 2 * args.hop_s]
                delay = 1000.0 * (hit[0] - e["onset_s"]) if hit else np.inf
                measured.append(total)
                combined.append(min(total, delay + rest))
                found.append(1.0 if hit else 0.0)
                groups.append(rec)
        p50 = bootstrap_quantile(combined, groups, 0.5)
        p95 = bootstrap_quantile(combined, groups, 0.95)
        base95 = bootstrap_quantile(measured, groups, 0.95)
        diff = paired_quantile_difference(combined, measured, groups, 0.95)
        share = bootstrap_mean(found, groups)
        per_h = n_fires / lab_hours
        print(f"budget {budget:g}/h (threshold {threshold:.2f}, val background {bg_rate:.1f}/h): fires on "
              f"{format_interval(share)} % of onsets; onset -> answer p50 {format_interval(p50, scale=1.0, digits=0)}, "
              f"p95 {format_interval(p95, scale=1.0, digits=0)} ms (measured p95 "
              f"{format_interval(base95, scale=1.0, digits=0)}; paired p95 difference "
              f"{format_interval(diff, scale=1.0, digits=0, signed=True)}); {per_h:.0f} fires per labelled hour")
        out["budgets"].append({"budget_per_hour": budget, "threshold": float(threshold),
                               "val_background_per_hour": bg_rate, "onsets": len(combined),
                               "fires_on_share": share.to_dict(), "p50_ms": p50.to_dict(), "p95_ms": p95.to_dict(),
                               "measured_p95_ms": base95.to_dict(), "p95_difference_ms": diff.to_dict(),
                               "fires_per_labelled_hour": per_h})
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
