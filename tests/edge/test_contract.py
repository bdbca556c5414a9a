"""The native binary's edge contract is generated from the Python definitions (edge/contract.py)."""
from __future__ import annotations

import re

import pytest

from edge import contract, local_answer
from edge.policy import OFFLOAD_SPECS
from shared import protocol, queries
from shared.labels import names


def test_the_committed_header_is_what_the_python_definitions_generate():
    # Regenerate and diff: a label, query rule, phrase, offload size or protocol limit changed in
    # Python without `python -m edge.contract` (and a rebuild) fails here.
    assert contract.HEADER.read_text(encoding="utf-8") == contract.render_header(contract.make_contract())
    assert contract.main(["--check"]) == 0


def test_the_contract_carries_every_definition():
    c = contract.make_contract()
    assert c["audio_events"] == names("audio_event")
    q = queries.query_contract()
    assert c["queries"]["kinds"] == queries.KINDS and c["queries"]["kind_rules"] == q["kind_rules"]
    assert c["queries"]["label_phrases"] == q["label_phrases"] and c["queries"]["fallback_kind"] == "other"
    assert c["local_answer"] == {"LOOKBACK_S": local_answer.LOOKBACK_S,
                                 "ACTION_LOOKBACK_S": local_answer.ACTION_LOOKBACK_S,
                                 "ACTIVITY_LOOKBACK_S": local_answer.ACTIVITY_LOOKBACK_S,
                                 "EPISODE_GAP_S": local_answer.EPISODE_GAP_S,
                                 "SAME_MOMENT_S": local_answer.SAME_MOMENT_S, "UNKNOWN": local_answer.UNKNOWN}
    assert c["visual_actions"] == names("visual_action")
    assert c["queries"]["actions"] == list(queries.ACTIONS) and c["queries"]["activities"] == list(queries.ACTIVITIES)
    assert c["offload_kinds"]["full"] == {"frames": OFFLOAD_SPECS["full"].frames,
                                          "jpeg_quality": OFFLOAD_SPECS["full"].jpeg_quality,
                                          "audio_s": OFFLOAD_SPECS["full"].audio_s}
    assert c["protocol_limits"]["MAX_MESSAGE_BYTES"] == protocol.MAX_MESSAGE_BYTES
    text = contract.render_header(c)
    assert f"inline constexpr std::size_t MAX_FRAMES = {protocol.MAX_FRAMES};" in text
    doorbell = names("audio_event").index("doorbell")
    assert f'{{{doorbell}, "ring the doorbell"}},  // doorbell' in text
    assert '{QueryKind::kOrder, true, "which came first"},' in text and '{QueryKind::kOrder, false, " first,"},' in text
    assert "enum class QueryKind : std::uint8_t {kSoundId, kYesNo, kWhy, kWhyStop, kObject, kCount, kOrder, kAction, " \
        "kActivity, kOther};" in text
    assert f"inline constexpr double kActionLookbackS = {float(local_answer.ACTION_LOOKBACK_S)!r};" in text
    assert f"inline constexpr double kActivityLookbackS = {float(local_answer.ACTIVITY_LOOKBACK_S)!r};" in text
    assert "inline constexpr const char* kActions[] = {" + ", ".join(f'"{a}"' for a in queries.ACTIONS) + "};" in text
    assert "inline constexpr const char* kActivities[] = {" + ", ".join(f'"{a}"' for a in queries.ACTIVITIES) + "};" \
        in text
    assert f"inline constexpr std::size_t kNumVisualActions = {len(names('visual_action'))};" in text


def test_an_action_that_is_not_a_visual_action_label_is_refused(monkeypatch):
    monkeypatch.setattr(queries, "ACTIONS", (*queries.ACTIONS, "juggle"))
    with pytest.raises(ValueError, match=r"actions \['juggle'\] are not visual_action labels"):
        contract.make_contract()


def test_the_text_tables_are_pythons_lower_and_strip():
    t = contract.python_text_tables()
    lowered = {}
    for first, count, delta, stride in t["lower_runs"]:
        for i in range(count):
            lowered[first + i * stride] = chr(first + i * stride + delta)
    lowered.update({c: s for c, s in t["lower_special"].items()})
    for c in range(0x110000):  # every code point, as the binary reads the tables
        assert lowered.get(c, chr(c)) == chr(c).lower(), hex(c)
    assert t["whitespace"] == [c for c in range(0x110000) if chr(c).strip() == ""]
    spans = [(a, a + (n - 1) * st) for a, n, _, st in t["lower_runs"]]
    assert all(b < a2 for (_, b), (a2, _) in zip(spans, spans[1:])), "runs must be ascending and disjoint"
    assert lowered[0x212A] == "k" and t["lower_special"] == {0x130: "i\u0307"}


def test_a_rule_the_binary_could_not_match_is_refused(monkeypatch):
    monkeypatch.setattr(queries, "SYNONYMS", {**queries.SYNONYMS, "knock": ("Knock-knock",)})
    with pytest.raises(ValueError, match="'knock': phrase 'Knock-knock'"):
        contract.make_contract()
    monkeypatch.undo()
    # the object rule in upper case (every other rule kept: a kind left without one is another error)
    rules = tuple({**r, "starts_with": ("What did",)} if r["kind"] == "object" else r for r in queries.KIND_RULES)
    monkeypatch.setattr(queries, "KIND_RULES", rules)
    with pytest.raises(ValueError, match="'What did' is not lower-case ASCII"):
        contract.make_contract()


def test_a_changed_definition_makes_the_check_fail(tmp_path, monkeypatch):
    stale = tmp_path / "edge_contract.h"
    stale.write_text(contract.HEADER.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(protocol, "MAX_FRAMES", protocol.MAX_FRAMES + 1)
    assert contract.main(["--check", "--out", str(stale)]) == 1
    assert contract.main(["--out", str(stale)]) == 0
    assert f"MAX_FRAMES = {protocol.MAX_FRAMES};" in stale.read_text(encoding="utf-8")
    monkeypatch.setattr(queries, "SYNONYMS", {**queries.SYNONYMS, "knock": ("rapping",)})
    assert contract.main(["--check", "--out", str(stale)]) == 1


def test_the_native_sources_keep_no_copies():
    src = contract.HEADER.parent
    for name in ("queries.cpp", "local_answer.cpp", "policy.cpp", "protocol.h"):
        assert "edge_contract.h" in (src / name).read_text(encoding="utf-8") or \
            "edge_contract.h" in (src / name.replace(".cpp", ".h")).read_text(encoding="utf-8"), name
    assert "8u * 1024 * 1024" not in (src / "protocol.h").read_text(encoding="utf-8")
    c = contract.make_contract()
    q = c["queries"]
    rules = {t for r in q["kind_rules"] for t in (*r["starts_with"], *r["contains"])}
    words = {*c["audio_events"], *c["visual_actions"], *q["kinds"], *q["answer_types"], q["yes"], q["no"],
             c["local_answer"]["UNKNOWN"],
             *rules, *(p for ps in q["label_phrases"].values() for p in ps)}
    for name in ("queries.cpp", "queries.h", "local_answer.cpp", "local_answer.h", "runtime.cpp", "main.cpp"):
        code = re.sub(r"//.*", "", (src / name).read_text(encoding="utf-8"))  # comments may quote the rules
        literals = set(re.findall(r'"((?:[^"\\]|\\.)*)"', code))
        # The query code may quote nothing of the contract; the rest (event-log keys such as
        # "label" or "steps") no rule and no kind.
        copied = literals & (words if name.startswith(("queries", "local_answer")) else rules | set(q["kinds"]))
        assert not copied, f"{name} hand-copies {sorted(copied)}"
        assert r"\t\n\r\f\v" not in code, f"{name} hand-copies a list of white space"
