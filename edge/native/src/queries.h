// The wearer-query contract (shared/queries.py) in the binary: a question's kind, the sounds
// it names and the scoring rule. Every rule, kind, phrase and table comes from the generated
// edge_contract.h; this file only applies them the way shared/queries.py does, so the two
// agree on every text (tests/edge/native/test_native_queries.py checks it).
//
// Text: UTF-8. Python runs the rules on str (code points) after lower() and strip(); here
// python_lower/python_strip do the same per code point from the header's tables. Python's
// one context rule (a Greek capital sigma at a word's end lowers to the final sigma) is not
// modelled; no rule, phrase or gold answer type of the contract contains Greek.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "edge_contract.h"

namespace earshot {

using contract::AnswerType;
using contract::QueryKind;

// Python's text.lower() and text.strip() of UTF-8 text. A byte that does not start a valid
// UTF-8 sequence passes through unchanged (Python would not have decoded such text).
std::string python_lower(const std::string& utf8);
std::string python_strip(const std::string& utf8);

const char* kind_name(QueryKind kind);                 // "sound_id", ...
AnswerType answer_type(QueryKind kind);                // what an answer of that kind is
const char* answer_type_name(AnswerType type);         // "label", ...

// The taxonomy's audio events (shared/labels.py names("audio_event")), in order.
const std::vector<std::string>& audio_event_labels();

// shared.queries.query_kind: the kind of the first pattern matching the lower-cased,
// stripped text (contract::kKindPatterns), else contract::kKindWhenNoPatternMatches.
QueryKind query_kind(const std::string& text);

// shared.queries.labels_named: the audio labels the text names (their phrases, longest match
// first where matches overlap), in the order they appear, each once.
std::vector<std::string> labels_named(const std::string& text);

// shared.queries.answer_matches: nullopt without a gold answer (absent or ""), else whether
// the answer equals it after strip() and lower().
std::optional<bool> answer_matches(const std::string& answer, const std::optional<std::string>& gold);

// shared.answering.is_unknown: an answer that says nothing (empty or "unknown" after strip() and lower()).
bool is_unknown(const std::string& answer);

}  // namespace earshot
