"""The trigger on held-out recordings, as the glasses run it: detector figures and camera-on share.

    python scripts/bench_trigger.py --export runs/trigger/export --dataset data/trigger_world --json trigger.json
    python scripts/bench_trigger.py --export runs/demo/kd/trigger/export --dataset runs/demo/world --recordings 2

Two parts, one JSON:

1. **Detector** (from ``earshot export``'s report beside the program,
   ``<program>.trigger_eval.json``): event recall and false triggers per hour
   at the card's operating point, with intervals, the targets and the DET
   curve (see distill/trigger_eval.py).
2. **Camera-on share** under ``audio_trigger``: ``earshot edge``'s runtime
   (edge/runtime.py, no cloud: offloads fall back, which does not change when
   the camera is on) over each held-out recording; the share of hops with the
   camera on is read back from the JSONL event log (``camera`` events and the
   ``end`` line), per recording, with a recording-level interval. Beside it,
   the controls: an always-on camera (100%) and an oracle trigger that turns
   the camera on at every annotated sound for the same hold
   (``audio_trigger.hold_s``). Each recording's row names the program's
   sha256 and the policy parameters, so the simulator's capture-aware query
   success for the same recordings can be joined to it by ``recording_id``.

The same is measured with the camera woken only by the *important* sounds
(``--wake-labels``, default: the simulator's ``env.important_labels``): the
trigger program is unchanged, its card copy sets the other labels' thresholds
to 1 (never held), so the other sounds no longer turn the camera on. In a
world where something sounds most of the time (the oracle for all 18 labels
needs the camera on about three quarters of the time), this is the setting
the 30% target can apply to.

Target (issue 17): camera on <= 30% of the recording under audio_trigger.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CAMERA_SHARE_TARGET = 0.30


def camera_on_share(events: list[dict[str, Any]], hop_s: float) -> tuple[float, int]:
    """(share of steps with the camera on, steps) from one event log.

    A ``camera`` event at step time t switches the camera for that step onwards; the
    ``end`` line gives the number of steps.
    """
    end = next(e for e in reversed(events) if e["kind"] == "end")
    steps = int(end["steps"])
    on_steps, on_since = 0, None
    for e in events:
        if e["kind"] != "camera":
            continue
        k = int(round(e["t_s"] / hop_s)) - 1  # the step index of t_s
        if e["on"] and on_since is None:
            on_since = k
        elif not e["on"] and on_since is not None:
            on_steps += k - on_since
            on_since = None
    if on_since is not None:
        on_steps += steps - on_since
    return (on_steps / steps if steps else 0.0), steps


def oracle_share(annotations, hold_s: float, hop_s: float, labels: set[str]) -> float:
    """Share of steps an ideal trigger keeps the camera on: from each sound's onset to hold_s past its end."""
    steps = int(np.floor(annotations.duration_s / hop_s + 1e-9))
    t = (np.arange(steps) + 1) * hop_s
    on = np.zeros(steps, bool)
    for e in annotations.events:
        if e.label in labels:
            on |= (t >= e.onset_s) & (t < e.offset_s + hold_s)
    return float(on.mean()) if steps else 0.0


def wake_only(trigger_path: Path, labels: list[str], folder: Path) -> Path:
    """A copy of the program whose card holds only ``labels`` (the others' thresholds set to 1)."""
    import shutil

    from shared.model_card import card_path_for, load_model_card, save_model_card

    card = load_model_card(card_path_for(trigger_path), check_program=True)
    unknown = sorted(set(labels) - set(card.labels))
    if unknown:
        raise SystemExit(f"--wake-labels: {unknown} are not labels of {trigger_path.name}")
    card.thresholds = {lab: (th if lab in labels else 1.0) for lab, th in card.thresholds.items()}
    card.threshold_rule += f"; camera wake-up restricted to {', '.join(labels)} (others set to 1)"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(trigger_path, folder / trigger_path.name)
    save_model_card(card, card_path_for(folder / trigger_path.name))
    return folder / trigger_path.name


def run_camera(trigger_path: Path, dataset_root: Path, n: int, logs: Path, hold_s: float,
               oracle_labels: set[str] | None = None) -> dict[str, Any]:
    import torch

    from edge.eventlog import EventLog
    from edge.policy import make_policy
    from edge.programs import load_program
    from edge.runtime import EdgeRuntime
    from edge.source import RecordingSource
    from shared.dataset import load_dataset
    from shared.profiles import EnergyMeter, load_device_profile, load_network_profile
    from shared.stats import bootstrap_mean

    torch.set_num_threads(1)
    trigger = load_program(trigger_path, expect="trigger")
    dataset = load_dataset(dataset_root)
    entries = dataset.split("test")[: n or None]
    device, network = load_device_profile("glasses_2025"), load_network_profile("wifi")
    rows = []
    for entry in entries:
        log = logs / f"{entry.id}.jsonl"
        policy = make_policy("audio_trigger", hold_s=hold_s)
        with EventLog(log) as ev:
            rt = EdgeRuntime(RecordingSource(entry.path), trigger, None, policy, EnergyMeter(device, network), ev,
                             client=None, link_rtt_ms=network.rtt_ms, link_mbps=network.uplink_mbps,
                             run_info={"device": device.name, "network": network.name,
                                       "trigger_program": str(trigger_path), "student_program": None, "endpoint": None})
            rt.run()
        events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        share, steps = camera_on_share(events, rt.hop_s)
        ann = rt.source.recording.annotations
        rows.append({"recording_id": entry.id, "scenario": ann.environment, "snr_db": ann.snr_db, "steps": steps,
                     "camera_on_share": share, "triggers": sum(e["kind"] == "trigger" for e in events),
                     "oracle_share": oracle_share(ann, hold_s, rt.hop_s, oracle_labels or set(trigger.card.labels)),
                     "policy": "audio_trigger", "policy_params": policy.params(),
                     "trigger_sha256": trigger.card.sha256})
    ids = [r["recording_id"] for r in rows]
    share = bootstrap_mean([r["camera_on_share"] for r in rows], ids)
    oracle = bootstrap_mean([r["oracle_share"] for r in rows], ids)
    return {"recordings": rows, "camera_on_share": share.to_dict(), "oracle_share": oracle.to_dict(),
            "always_on_share": 1.0, "target": CAMERA_SHARE_TARGET, "met": share.value <= CAMERA_SHARE_TARGET,
            "program": str(trigger_path), "dataset": str(dataset_root)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from shared.stats import format_interval

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", type=Path, required=True, help="an earshot export folder with the trigger program")
    ap.add_argument("--dataset", type=Path, required=True, help="labelled recordings (their test split is used)")
    ap.add_argument("--program", default="trigger_xnnpack_int8.pte")
    ap.add_argument("--recordings", type=int, default=0, help="test recordings for the camera share; 0 = all")
    ap.add_argument("--hold-s", type=float, default=2.0, help="audio_trigger's camera hold after a trigger")
    ap.add_argument("--logs", type=Path, default=None, help="keep the event logs here")
    ap.add_argument("--wake-labels", default=None,
                    help="comma-separated labels that wake the camera in the second run (default: sim's important labels)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    program = args.export / args.program
    if not program.is_file():
        raise SystemExit(f"{program}: no such program (run earshot export first)")
    report_path = program.with_name(f"{program.stem}.trigger_eval.json")
    detector = json.loads(report_path.read_text()) if report_path.is_file() else None
    with tempfile.TemporaryDirectory() as tmp:
        logs = args.logs or Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        camera = run_camera(program, args.dataset, args.recordings, logs / "all", args.hold_s)
        if args.wake_labels is None:
            from sim.config import EnvConfig

            wake = list(EnvConfig().important_labels)
        else:
            wake = [x for x in args.wake_labels.split(",") if x]
        important = run_camera(wake_only(program, wake, Path(tmp) / "wake"), args.dataset, args.recordings,
                               logs / "important", args.hold_s, set(wake))
        important["wake_labels"] = wake
    out = {"program": program.name, "detector": detector, "camera": camera, "camera_important": important}
    if detector:
        t = detector["test"]
        print(f"event recall {format_interval(t['event_recall'])}% at "
              f"{format_interval(t['fa_per_hour_background'], scale=1.0)} false triggers/h (background, "
              f"{t['hours_background']:.2f} h); {t['n_events']} events in {t['n_recordings_labelled']} recordings; "
              f"targets {'met' if detector['targets']['met'] else 'NOT met'}")
    else:
        print(f"{report_path}: missing (export the trigger with this Earshot to get the detector figures)")
    print(f"camera on under audio_trigger: {format_interval(camera['camera_on_share'])}% of the recording "
          f"(oracle trigger {format_interval(camera['oracle_share'])}%, always-on 100%) over "
          f"{len(camera['recordings'])} held-out recordings; target <= {100 * CAMERA_SHARE_TARGET:.0f}%: "
          f"{'met' if camera['met'] else 'NOT met'}")
    print(f"camera on when only {len(wake)} important sounds wake it ({', '.join(wake)}): "
          f"{format_interval(important['camera_on_share'])}% (oracle {format_interval(important['oracle_share'])}%); "
          f"target <= {100 * CAMERA_SHARE_TARGET:.0f}%: {'met' if important['met'] else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
