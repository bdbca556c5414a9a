"""The edge contract for the native binary, generated from the Python definitions.

The C++ runtime (``edge/native``) must agree with Python on the audio event
and visual action labels, the wearer-query contract (how a question's kind and
the sounds it names are read, the kinds' answer types, the actions and
activities the visual kinds answer with, the local answerer's constants), the
offload kinds and their sizes, and the wire protocol's limits. It does not
copy them: it includes ``edge/native/src/edge_contract.h``, which this module
writes from

    shared.labels          the audio event labels, in output order; the visual action labels
                           (what the device's memory keeps apart from sounds, as "seen")
    shared.queries         query_contract(): kinds and answer types, the kind rules, each label's
                           phrases (own name, then SYNONYMS), yes/no, DISTINCT_SOUNDS, the ACTIONS ("what did I
                           just do?") and ACTIVITIES ("what am I doing?") answered with
    edge.local_answer      LOOKBACK_S, ACTION_LOOKBACK_S, ACTIVITY_LOOKBACK_S, EPISODE_GAP_S,
                           SAME_MOMENT_S, UNKNOWN (the rules are shared.answering's)
    Python's str           lower() and strip() over Unicode, which the query rules and the
                           scoring rule run through (tables: the binary has no Unicode library)
    edge.policy            OFFLOAD_SPECS (frames, JPEG quality, seconds of audio)
    shared.protocol        PROTOCOL_VERSION and the section-8 limits (MAX_*)

    python -m edge.contract            # rewrite the header
    python -m edge.contract --check    # exit 1 if it is stale (tests/edge/test_contract.py does this)

Change a definition in Python, run the first command, rebuild the binary. A
new query kind also needs a case in ``edge/native/src/local_answer.cpp``: the
kinds are a C++ enum there, and the build fails on an unhandled one.
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any

__all__ = ["HEADER", "make_contract", "python_text_tables", "render_header", "main"]

HEADER = Path(__file__).resolve().parent / "native" / "src" / "edge_contract.h"
#: shared.protocol limits the binary uses, in the order they are written.
_LIMITS = ("MAX_MESSAGE_BYTES", "MAX_DEPTH", "MAX_OBJECTS", "MAX_ARRAY_LEN", "MAX_MAP_LEN", "MAX_STR_BYTES",
           "MAX_BIN_BYTES", "MAX_FRAMES", "MAX_JPEG_BYTES", "MAX_AUDIO_S", "MAX_LABELS", "MAX_LABEL_BYTES",
           "MAX_QUERY_BYTES", "MAX_ANSWER_BYTES", "MAX_ERROR_TEXT_BYTES", "MAX_MODEL_ID_BYTES", "MAX_DEADLINE_MS",
           "MAX_RETRY_AFTER_MS", "MAX_TIMING_STAGES", "MAX_BATCH_SIZE")
#: What labels_named can match: the text is reduced to a-z and spaces, and a phrase starts at a word.
_PHRASE = re.compile(r"[a-z]+( [a-z]+)*")
_MAX_CODE_POINT = 0x10FFFF


def make_contract() -> dict[str, Any]:
    """The contract as plain data (what the header encodes).

    Raises:
        ValueError: a query rule or phrase the binary could not match as Python does
            (a rule that is not lower case, a phrase with other characters than a-z
            and single spaces, a kind without a C++ name, two kinds with no rule, an
            action or activity that is not a visual action label).
    """
    from edge import local_answer, policy
    from shared import protocol
    from shared.labels import names
    from shared.queries import query_contract

    q = query_contract()
    audio = list(names("audio_event"))
    if q["audio_labels"] != audio:
        raise ValueError("shared.queries scans audio labels in another order than shared.labels lists them")
    visual = list(names("visual_action"))
    for key in ("actions", "activities"):
        stray = [a for a in q[key] if a not in visual]
        if stray:
            raise ValueError(f"shared.queries {key} {stray} are not visual_action labels (shared.labels)")
    contract = {
        "audio_events": audio,
        "visual_actions": visual,
        "queries": {
            "version": q["version"],
            "answer_types": list(q["answer_types"]),
            "kinds": dict(q["kinds"]),
            "kind_rules": q["kind_rules"],
            "fallback_kind": _fallback_kind(q),
            "label_phrases": {lab: q["label_phrases"][lab] for lab in audio},
            "yes": q["yes"],
            "no": q["no"],
            "distinct_sounds": list(q["distinct_sounds"]),
            "actions": list(q["actions"]),
            "activities": list(q["activities"]),
        },
        "local_answer": {"LOOKBACK_S": local_answer.LOOKBACK_S, "ACTION_LOOKBACK_S": local_answer.ACTION_LOOKBACK_S,
                         "ACTIVITY_LOOKBACK_S": local_answer.ACTIVITY_LOOKBACK_S,
                         "EPISODE_GAP_S": local_answer.EPISODE_GAP_S, "SAME_MOMENT_S": local_answer.SAME_MOMENT_S,
                         "UNKNOWN": local_answer.UNKNOWN},
        "text": python_text_tables(),
        "offload_kinds": {k: {"frames": s.frames, "jpeg_quality": s.jpeg_quality, "audio_s": s.audio_s}
                          for k, s in policy.OFFLOAD_SPECS.items()},
        "protocol_version": protocol.PROTOCOL_VERSION,
        "protocol_limits": {k: getattr(protocol, k) for k in _LIMITS},
    }
    _check_queries(contract["queries"])
    return contract


def _fallback_kind(q: dict[str, Any]) -> str:
    """The kind of a question no rule recognises: the one kind without a rule."""
    ruled = {r["kind"] for r in q["kind_rules"]}
    rest = [k for k in q["kinds"] if k not in ruled]
    if len(rest) != 1:
        raise ValueError(f"exactly one query kind may have no rule (the fallback), got {rest}")
    return rest[0]


def _check_queries(queries: dict[str, Any]) -> None:
    for kind in queries["kinds"]:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", kind):
            raise ValueError(f"query kind {kind!r}: not a C++ name (a-z, digits, _)")
    for t in queries["answer_types"]:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", t):
            raise ValueError(f"answer type {t!r}: not a C++ name (a-z, digits, _)")
    for rule in queries["kind_rules"]:
        for text in (*rule["starts_with"], *rule["contains"]):
            # The rules run on lower-cased, stripped text, so a rule with upper case never matches;
            # ASCII keeps the binary's byte comparison plainly equal to Python's on code points.
            if not text or not text.isascii() or text != text.lower():
                raise ValueError(f"kind rule {rule['kind']!r}: {text!r} is not lower-case ASCII")
    for label, phrases in queries["label_phrases"].items():
        for phrase in phrases:
            if not _PHRASE.fullmatch(phrase):
                raise ValueError(f"label {label!r}: phrase {phrase!r} is not words of a-z separated by one space")


def python_text_tables() -> dict[str, Any]:
    """Python's ``str.lower()`` and ``str.strip()`` as data, for a reader without Unicode tables.

    Returns ``unicode_version``; ``whitespace`` (the code points ``strip()`` removes);
    ``lower_runs``: ``[first, count, delta, stride]`` lists, meaning code points
    ``first + i * stride`` (``i < count``) lower to themselves plus ``delta``, every
    other code point (outside ``lower_special``) to itself; ``lower_special``:
    ``{code point: its lower() as a string}`` where that is longer than one character.

    Raises:
        ValueError: if lower-casing ever makes or unmakes white space (the binary strips
            and lowers in either order, as Python's two rules do).
    """
    return copy.deepcopy(_python_text_tables())


@functools.lru_cache(maxsize=1)  # a second's scan of every code point; the tests ask several times
def _python_text_tables() -> dict[str, Any]:
    whitespace, runs, special = [], [], {}
    for c in range(_MAX_CODE_POINT + 1):
        ch = chr(c)
        low = ch.lower()
        if low == ch:
            if ch.isspace():  # what strip() removes
                whitespace.append(c)
            continue
        if ch.isspace() or any(x.isspace() for x in low):
            raise ValueError(f"U+{c:04X}: lower() changes white space")
        if len(low) > 1:
            special[c] = low
            continue
        delta = ord(low) - c
        if runs:
            first, count, d, stride = runs[-1]
            if d == delta and (count == 1 and c - first in (1, 2) or count > 1 and c == first + count * stride):
                runs[-1] = [first, count + 1, d, c - first if count == 1 else stride]
                continue
        runs.append([c, 1, delta, 1])
    return {"unicode_version": unicodedata.unidata_version, "whitespace": whitespace, "lower_runs": runs,
            "lower_special": special}


def _c_str(s: str) -> str:
    """A C string literal of ``s`` in UTF-8 (octal escapes: they never swallow the next character)."""
    out = []
    for b in s.encode("utf-8"):
        if chr(b) in '"\\?':  # ? too: no trigraphs
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _c_num(x: Any) -> str:
    return repr(float(x)) if isinstance(x, float) else str(int(x))


def _c_name(snake: str) -> str:
    """``sound_id`` -> ``kSoundId``."""
    return "k" + "".join(w.capitalize() for w in snake.split("_"))


def _rows(items: list[str], per_line: int) -> list[str]:
    return ["    " + " ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]


def _query_lines(contract: dict[str, Any]) -> list[str]:
    q, audio = contract["queries"], contract["audio_events"]
    kinds, types = list(q["kinds"]), q["answer_types"]
    la = contract["local_answer"]
    return [
        f"// The wearer-query contract (shared.queries, version {q['version']}).",
        f"inline constexpr int kQueryContractVersion = {q['version']};",
        "enum class AnswerType : std::uint8_t {" + ", ".join(_c_name(t) for t in types) + "};",
        "inline constexpr const char* kAnswerTypeNames[] = {" + ", ".join(_c_str(t) for t in types) + "};",
        "enum class QueryKind : std::uint8_t {" + ", ".join(_c_name(k) for k in kinds) + "};",
        "inline constexpr const char* kQueryKindNames[] = {" + ", ".join(_c_str(k) for k in kinds) + "};",
        f"inline constexpr std::size_t kNumQueryKinds = {len(kinds)};",
        "// Each kind's answer type, in QueryKind order.",
        "inline constexpr AnswerType kQueryKindAnswerTypes[] = {",
        *[f"    AnswerType::{_c_name(q['kinds'][k])},  // {k}" for k in kinds],
        "};",
        "",
        "// How a question's kind is read: its text lower-cased and stripped (Python's lower() and",
        "// strip(), the tables below), the kind of the first pattern that matches, in this order;",
        "// prefix: the text starts with `text`, else it contains it.",
        "struct KindPattern {",
        "  QueryKind kind;",
        "  bool prefix;",
        "  const char* text;",
        "};",
        "inline constexpr KindPattern kKindPatterns[] = {",
        *[f"    {{QueryKind::{_c_name(r['kind'])}, {'true' if pre else 'false'}, {_c_str(t)}}},"
          for r in q["kind_rules"] for pre, key in ((True, "starts_with"), (False, "contains")) for t in r[key]],
        "};",
        f"inline constexpr QueryKind kKindWhenNoPatternMatches = QueryKind::{_c_name(q['fallback_kind'])};",
        "",
        "// The phrases that name each audio label (its own name, then the words people use for it),",
        "// in the order labels_named scans them: label is an index into kAudioEvents.",
        "struct LabelPhrase {",
        "  std::size_t label;",
        "  const char* phrase;",
        "};",
        "inline constexpr LabelPhrase kLabelPhrases[] = {",
        *[f"    {{{audio.index(lab)}, {_c_str(p)}}},  // {lab}" for lab, ps in q["label_phrases"].items() for p in ps],
        "};",
        f"inline constexpr const char* kYes = {_c_str(q['yes'])};",
        f"inline constexpr const char* kNo = {_c_str(q['no'])};",
        "// The sounds \"what was that?\" and \"why did I ...?\" prefer (DISTINCT_SOUNDS).",
        "inline constexpr const char* kDistinctSounds[] = {" + ", ".join(_c_str(a) for a in q["distinct_sounds"])
        + "};",
        "// The visual actions \"what did I just do?\" answers with (ACTIONS), and \"what am I doing?\"",
        "// (ACTIVITIES): names of kVisualActions.",
        "inline constexpr const char* kActions[] = {" + ", ".join(_c_str(a) for a in q["actions"]) + "};",
        "inline constexpr const char* kActivities[] = {" + ", ".join(_c_str(a) for a in q["activities"]) + "};",
        "",
        "// The local answerer's rules (edge.local_answer, shared.answering).",
        f"inline constexpr double kLookbackS = {_c_num(float(la['LOOKBACK_S']))};",
        f"inline constexpr double kActionLookbackS = {_c_num(float(la['ACTION_LOOKBACK_S']))};",
        f"inline constexpr double kActivityLookbackS = {_c_num(float(la['ACTIVITY_LOOKBACK_S']))};",
        f"inline constexpr double kEpisodeGapS = {_c_num(float(la['EPISODE_GAP_S']))};",
        f"inline constexpr double kSameMomentS = {_c_num(float(la['SAME_MOMENT_S']))};",
        f"inline constexpr const char* kUnknown = {_c_str(la['UNKNOWN'])};",
    ]


def _text_lines(text: dict[str, Any]) -> list[str]:
    return [
        f"// Python's str.lower() and str.strip() (Unicode {text['unicode_version']}), which the query",
        "// rules and the scoring rule run through. Code point first + i * stride (i < count) lowers",
        "// to itself + delta; a special one to its UTF-8 string; any other to itself.",
        "struct LowerRun {",
        "  char32_t first;",
        "  std::uint16_t count;",
        "  std::int32_t delta;",
        "  std::uint8_t stride;",
        "};",
        "inline constexpr LowerRun kLowerRuns[] = {",
        *_rows([f"{{0x{a:X}, {n}, {d}, {st}}}," for a, n, d, st in text["lower_runs"]], 4),
        "};",
        "struct LowerSpecial {",
        "  char32_t code_point;",
        "  const char* lower_utf8;",
        "};",
        "inline constexpr LowerSpecial kLowerSpecial[] = {",
        *[f"    {{0x{c:X}, {_c_str(low)}}}," for c, low in text["lower_special"].items()],
        "};",
        "// The code points strip() removes, ascending.",
        "inline constexpr char32_t kWhitespace[] = {",
        *_rows([f"0x{c:X}," for c in text["whitespace"]], 10),
        "};",
    ]


def render_header(contract: dict[str, Any]) -> str:
    """The C++17 header text for ``contract``."""
    lines = [
        "// GENERATED by `python -m edge.contract` from shared/labels.py, shared/queries.py,",
        "// shared/answering.py (via edge/local_answer.py), edge/policy.py, shared/protocol.py and",
        "// Python's str. Do not edit: change the Python and regenerate (tests/edge/test_contract.py",
        "// fails while this file is stale).",
        "#pragma once",
        "#include <cstddef>",
        "#include <cstdint>",
        "",
        "namespace earshot::contract {",
        "",
        "// Audio event labels, in the trigger's output order (shared.labels).",
        "inline constexpr const char* kAudioEvents[] = {",
        *[f"    {_c_str(lab)}," for lab in contract["audio_events"]],
        "};",
        f"inline constexpr std::size_t kNumAudioEvents = {len(contract['audio_events'])};",
        "// Visual action labels (shared.labels): the wearer's actions the memory keeps apart from sounds.",
        "inline constexpr const char* kVisualActions[] = {",
        *[f"    {_c_str(lab)}," for lab in contract["visual_actions"]],
        "};",
        f"inline constexpr std::size_t kNumVisualActions = {len(contract['visual_actions'])};",
        "",
        *_query_lines(contract),
        "",
        "// Offload kinds (edge.policy.OFFLOAD_SPECS).",
        "struct OffloadKind {",
        "  const char* name;",
        "  int frames;",
        "  int jpeg_quality;",
        "  double audio_s;",
        "};",
        "inline constexpr OffloadKind kOffloadKinds[] = {",
        *[f"    {{{_c_str(k)}, {v['frames']}, {v['jpeg_quality']}, {_c_num(float(v['audio_s']))}}},"
          for k, v in contract["offload_kinds"].items()],
        "};",
        "",
        "// Wire protocol (shared.protocol): version and section-8 limits.",
        f"inline constexpr int kProtocolVersion = {contract['protocol_version']};",
    ]
    for name, value in contract["protocol_limits"].items():
        ctype = "double" if isinstance(value, float) else ("std::int64_t" if name.endswith("_MS") or name == "MAX_BATCH_SIZE"
                                                           else "std::size_t")
        lines.append(f"inline constexpr {ctype} {name} = {_c_num(value)};")
    lines += ["", *_text_lines(contract["text"]), "", "}  // namespace earshot::contract", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="write edge/native/src/edge_contract.h from the Python definitions")
    ap.add_argument("--check", action="store_true", help="exit 1 if the header on disk differs")
    ap.add_argument("--out", type=Path, default=HEADER)
    args = ap.parse_args(argv)
    text = render_header(make_contract())
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is stale: run `python -m edge.contract` and rebuild edge/native", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
