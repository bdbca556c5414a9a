"""The native binary's edge contract is generated from the Python definitions (edge/contract.py)."""
from __future__ import annotations

from edge import contract
from shared.queries import SYNONYMS as _SYNONYMS
from edge.policy import OFFLOAD_SPECS
from shared import protocol
from shared.labels import names


def test_the_committed_header_is_what_the_python_definitions_generate():
    # Regenerate and diff: a label, synonym, offload size or protocol limit changed in Python
    # without `python -m edge.contract` (and a rebuild) fails here.
    assert contract.HEADER.read_text(encoding="utf-8") == contract.render_header(contract.make_contract())
    assert contract.main(["--check"]) == 0


def test_the_contract_carries_every_definition():
    c = contract.make_contract()
    assert c["audio_events"] == names("audio_event")
    assert c["synonyms"] == {k: list(v) for k, v in _SYNONYMS.items()}
    assert c["offload_kinds"]["full"] == {"frames": OFFLOAD_SPECS["full"].frames,
                                          "jpeg_quality": OFFLOAD_SPECS["full"].jpeg_quality,
                                          "audio_s": OFFLOAD_SPECS["full"].audio_s}
    assert c["protocol_limits"]["MAX_MESSAGE_BYTES"] == protocol.MAX_MESSAGE_BYTES
    text = contract.render_header(c)
    assert f"inline constexpr std::size_t MAX_FRAMES = {protocol.MAX_FRAMES};" in text
    assert '{"doorbell", "ring the doorbell"},' in text


def test_a_changed_definition_makes_the_check_fail(tmp_path, monkeypatch):
    stale = tmp_path / "edge_contract.h"
    stale.write_text(contract.HEADER.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(protocol, "MAX_FRAMES", protocol.MAX_FRAMES + 1)
    assert contract.main(["--check", "--out", str(stale)]) == 1
    assert contract.main(["--out", str(stale)]) == 0
    assert f"MAX_FRAMES = {protocol.MAX_FRAMES};" in stale.read_text(encoding="utf-8")


def test_the_native_sources_keep_no_copies():
    src = contract.HEADER.parent
    for name in ("local_answer.cpp", "policy.cpp", "protocol.h"):
        text = (src / name).read_text(encoding="utf-8")
        assert "edge_contract.h" in text
    assert '"microwave_beep"' not in (src / "local_answer.cpp").read_text(encoding="utf-8")
    assert "8u * 1024 * 1024" not in (src / "protocol.h").read_text(encoding="utf-8")
