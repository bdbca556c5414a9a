"""What a server tells a client in ``capabilities`` (the reply to ``hello``, docs/protocol.md 6.8-6.9).

Two halves with two owners:

- the server half (software name, protocol versions, request kinds, the label
  taxonomy) is fixed here;
- the model half (``input``, ``tags``, ``answers``) comes from the backend
  (``Backend.capabilities()``), travels to the broker in the worker's READY
  message as a plain map (``model_capabilities``), and is checked when the
  reply is built (``make_capabilities``), so a worker with a broken
  description cannot make the broker send an invalid message.

``TEACHER_ANSWERS`` documents the forms of ``result.answer`` the AV-LM teacher
was trained to write (the data engine's closed-form templates,
``cloud/data_engine/qa.py``); ``tests/cloud/test_capabilities.py`` checks
every gold answer of a generated QA set against them.
"""
from __future__ import annotations

import logging
from typing import Any

from shared.labels import GROUPS
from shared.protocol import (PROTOCOL_VERSION, REQUEST_KINDS, AnswerFormat, Capabilities, ModelInput,
                             ProtocolError)

__all__ = ["SERVER_NAME", "TEACHER_ANSWERS", "WEARER_ANSWER", "sentence_answer", "model_capabilities", "make_capabilities"]

log = logging.getLogger("earshot.server")

SERVER_NAME = "earshot-server/1"

#: The forms of the teacher's answers: what it was trained to write (a model
#: can still write something else; a client shows ``answer`` as text).
TEACHER_ANSWERS: tuple[AnswerFormat, ...] = (
    AnswerFormat(kind="summary", when="no query, or a summary request (AVSN: 'summarise the clip ...')",
                 format="<environment>; heard: <sound>, <sound>...; did: <action>, <action>... "
                        "(a list with nothing in it is 'none')",
                 example="kitchen; heard: timer_beep; did: open_oven"),
    AnswerFormat(kind="dense", when="a narration request (AVDN: 'narrate the clip ...')",
                 format="<second>s <event>; <second>s <event>... in time order, seconds from the window "
                        "start; 'none' if nothing happened",
                 example="0s chop; 4s timer_beep"),
    AnswerFormat(kind="yes_no", when="'did you hear <sound>?', 'did you <action> in this clip?', "
                                     "'did you see <state>?' (AVH), 'was the source of the <sound> sound in "
                                     "view?' (SSA), 'did <a> start before <b>?' (TR)",
                 format="yes | no", example="yes"),
    AnswerFormat(kind="label", when="'what made the <sound> sound?', 'what sound did the <source> make?' (SSA), "
                                    "'what caused <effect>?', 'what happened because of <cause>?' (TR)",
                 format="<label> (a taxonomy label or source name), or 'none' when there is no such event",
                 example="microwave"),
)


#: The form of ``result.answer`` for the wearer's closed-form questions (cloud/server/wearer.py).
WEARER_ANSWER = AnswerFormat(
    kind="wearer", when="a question of the wearer-query contract (shared/queries.py: 'what was that sound?', "
                        "'did the kettle whistle?', 'what did I just do?', ...)",
    format="the contract's closed form, read from the teacher's per-token perception (shared/answering.py): "
           "a sound label, yes | no, a count, a visual action, or 'unknown' when nothing perceived answers it",
    example="pick_up_phone")


def sentence_answer(lm_name: str) -> AnswerFormat:
    """The form of ``result.sentence``, announced when the server runs a language model."""
    return AnswerFormat(kind="sentence", when=f"any request with a query, in result.sentence (written by {lm_name} "
                                             "from result.evidence); answer keeps the closed-form text",
                        format="one short English sentence", example="I heard a timer beep 4 seconds ago.")


def model_capabilities(model_input: ModelInput, tags: tuple[str, ...],
                       answers: tuple[AnswerFormat, ...]) -> dict[str, Any]:
    """The model half as a plain map (what a worker puts in READY)."""
    return {"input": {k: getattr(model_input, k) for k in ("audio_s", "sample_rate_hz", "frame_hz", "frames",
                                                           "frame_size_px")},
            "tags": list(tags),
            "answers": [{"kind": a.kind, "when": a.when, "format": a.format, "example": a.example} for a in answers]}


def make_capabilities(request_id: int, *, ready: bool, model_id: str | None,
                      model: dict[str, Any] | None) -> Capabilities:
    """The ``capabilities`` reply; ``model`` is a worker's `model_capabilities` map (or None)."""
    labels = {group: tuple(lab.name for lab in labs) for group, labs in GROUPS.items()}
    base = dict(id=request_id, server=SERVER_NAME, versions=(PROTOCOL_VERSION,), kinds=tuple(sorted(REQUEST_KINDS)),
                ready=ready, model_id=model_id, labels=labels)
    if model:
        try:
            return Capabilities(**base, input=ModelInput(**model["input"]), tags=tuple(model["tags"]),
                                answers=tuple(AnswerFormat(**a) for a in model["answers"]))
        except (ProtocolError, KeyError, TypeError) as exc:
            log.error("a worker described its model wrongly (%s); capabilities sent without it", exc)
    return Capabilities(**base, tags=(), answers=())
