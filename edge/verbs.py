"""Edge verbs: ``earshot edge`` (the runtime over a recording) and ``earshot trace``.

    earshot edge recording=data/world/recordings/kitchen_s0_00000 \\
        trigger=runs/kd/export/trigger_xnnpack_int8.pte student=runs/kd_av/export/av_xnnpack_int8.pte
    earshot trace recording=data/world trigger=... student=... out=traces

Guide and file formats: docs/edge.md. The schemas live in ``edge/edge_config.py``
(configs/edge.yaml and configs/trace.yaml carry the defaults with comments);
every value is checked before any work starts, and a bad one exits with
status 2 naming the key.
"""
from __future__ import annotations

from pathlib import Path

from edge.edge_config import EdgeConfig, TraceConfig, load_profile, make_client
from shared.config import verb

__all__ = ["edge_main", "trace_main", "run_edge", "print_summary"]


def run_edge(cfg: EdgeConfig):
    """Build the runtime from a validated config, run it, return the `Summary` (and print the table)."""
    from edge.eventlog import EventLog
    from edge.policy import make_policy
    from edge.programs import load_program
    from edge.runtime import EdgeRuntime
    from edge.source import RecordingSource
    from shared.profiles import EnergyMeter

    # Programs first: a corrupt program should fail before a recording is decoded or a socket opened.
    trigger = load_program(cfg.trigger, expect="trigger")
    student = load_program(cfg.student, expect="av") if cfg.student else None
    device, network = load_profile(cfg.device, "device"), load_profile(cfg.network, "network")
    source = RecordingSource(cfg.recording, realtime=cfg.realtime)
    rid = source.recording.annotations.recording_id
    log_path = Path(cfg.log) if cfg.log else Path("runs/edge") / f"{rid}.jsonl"
    client = make_client(cfg.endpoint, cfg.server_public_key, cfg.client_keys, cfg.max_in_flight, cfg.deadline_ms)
    run_info = {"device": device.name, "network": network.name, "trigger_program": str(cfg.trigger),
                "student_program": str(cfg.student) if cfg.student else None, "endpoint": cfg.endpoint}
    try:
        with EventLog(log_path) as log:
            runtime = EdgeRuntime(source, trigger, student, make_policy(cfg.policy, **dict(cfg.policy_params)),
                                  EnergyMeter(device, network), log, client=client, hop_s=cfg.hop_s,
                                  deadline_ms=cfg.deadline_ms, link_rtt_ms=network.rtt_ms,
                                  link_mbps=network.uplink_mbps, run_info=run_info)
            summary = runtime.run()
    finally:
        if client is not None:
            client.close()
    if cfg.summary:
        print_summary(summary, log_path)
    return summary


def print_summary(s, log_path: Path | None = None) -> None:
    """The end-of-run table (rich)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"earshot edge: {s.recording_id} ({s.policy}, {s.duration_s:.1f} s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("steps", f"{s.steps}"),
        ("camera on", f"{100 * s.camera_share:.1f} % of steps"),
        ("frames captured", f"{s.frames_captured}"),
        ("student runs", f"{s.student_runs}"),
        ("offloads (results / fallbacks)", f"{s.offloads} ({s.results} / {s.fallbacks})"),
        ("bytes sent / received", f"{s.bytes_sent} / {s.bytes_received}"),
        ("queries", f"{s.queries}"),
        ("answers local / cloud", f"{s.answers_local} / {s.answers_cloud}"),
        ("answers correct", f"{s.answers_correct} / {s.queries}"),
        ("energy", f"{s.energy_mj:.1f} mJ"),
        ("mean power", f"{s.mean_power_mw:.1f} mW"),
        ("projected battery life", f"{s.battery_life_h:.1f} h"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)
    if log_path is not None:
        print(f"event log: {log_path}")


@verb("edge", EdgeConfig)
def edge_main(cfg: EdgeConfig) -> None:
    """Run the on-device loop over a recording (trigger, policy, student, offload) with an event log."""
    run_edge(cfg)


@verb("trace", TraceConfig)
def trace_main(cfg: TraceConfig) -> None:
    """Record what the trigger, student and cloud say at every step of recordings (for the simulator)."""
    from edge.trace import run_trace

    run_trace(cfg)
