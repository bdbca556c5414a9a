#include "queries.h"

#include <algorithm>
#include <iterator>
#include <string_view>

namespace earshot {

namespace {

constexpr char32_t kNotUtf8 = 0xFFFFFFFF;

// One unit of UTF-8 text at s[i]: a code point and its byte length, or one byte that does not
// start a valid sequence (kNotUtf8, length 1).
struct Unit {
  char32_t cp;
  std::size_t len;
};

Unit next_unit(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  if (c < 0x80) return {c, 1};
  std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (len == 0 || c > 0xF4 || i + len > s.size()) return {kNotUtf8, 1};
  // The second byte's range excludes overlong forms, surrogates and code points past U+10FFFF.
  unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
  if (b(1) < lo || b(1) > hi) return {kNotUtf8, 1};
  char32_t cp = c & (0x7F >> len);
  for (std::size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) return {kNotUtf8, 1};
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  return {cp, len};
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// cp.lower() for a code point lowering to one code point (the header's runs: ascending, disjoint).
char32_t lower_one(char32_t cp) {
  const auto& runs = contract::kLowerRuns;
  auto it = std::upper_bound(std::begin(runs), std::end(runs), cp,
                             [](char32_t c, const contract::LowerRun& r) { return c < r.first; });
  if (it == std::begin(runs)) return cp;
  const auto& r = *std::prev(it);
  char32_t off = cp - r.first;
  if (off % r.stride != 0 || off / r.stride >= r.count) return cp;
  return static_cast<char32_t>(static_cast<std::int64_t>(cp) + r.delta);
}

bool is_whitespace(char32_t cp) {
  return std::binary_search(std::begin(contract::kWhitespace), std::end(contract::kWhitespace), cp);
}

}  // namespace

std::string python_lower(const std::string& utf8) {
  std::string out;
  out.reserve(utf8.size());
  for (std::size_t i = 0; i < utf8.size();) {
    Unit u = next_unit(utf8, i);
    if (u.cp == kNotUtf8) {
      out += utf8[i];
    } else {
      auto special = std::find_if(std::begin(contract::kLowerSpecial), std::end(contract::kLowerSpecial),
                                  [&](const contract::LowerSpecial& s) { return s.code_point == u.cp; });
      if (special != std::end(contract::kLowerSpecial)) out += special->lower_utf8;
      else append_utf8(out, lower_one(u.cp));
    }
    i += u.len;
  }
  return out;
}

std::string python_strip(const std::string& utf8) {
  std::size_t begin = utf8.size(), end = 0;  // the first and past-the-last unit that is not white space
  for (std::size_t i = 0; i < utf8.size();) {
    Unit u = next_unit(utf8, i);
    if (!is_whitespace(u.cp)) {
      begin = std::min(begin, i);
      end = i + u.len;
    }
    i += u.len;
  }
  return begin < end ? utf8.substr(begin, end - begin) : std::string();
}

const char* kind_name(QueryKind kind) { return contract::kQueryKindNames[static_cast<std::size_t>(kind)]; }

AnswerType answer_type(QueryKind kind) { return contract::kQueryKindAnswerTypes[static_cast<std::size_t>(kind)]; }

const char* answer_type_name(AnswerType type) { return contract::kAnswerTypeNames[static_cast<std::size_t>(type)]; }

const std::vector<std::string>& audio_event_labels() {
  static const std::vector<std::string> labels(std::begin(contract::kAudioEvents), std::end(contract::kAudioEvents));
  return labels;
}

QueryKind query_kind(const std::string& text) {
  std::string t = python_strip(python_lower(text));
  for (const auto& p : contract::kKindPatterns) {
    // The patterns are lower-case ASCII (edge/contract.py checks), so comparing UTF-8 bytes is
    // comparing code points: an ASCII byte never occurs inside a multi-byte sequence.
    std::string_view want(p.text);
    bool hit = p.prefix ? t.compare(0, want.size(), want) == 0 : t.find(want) != std::string::npos;
    if (hit) return p.kind;
  }
  return contract::kKindWhenNoPatternMatches;
}

std::vector<std::string> labels_named(const std::string& text) {
  // re.sub(r"[^a-z ]+", " ", text.lower()): every run of other characters becomes one space
  // (a multi-byte character is a run of bytes >= 0x80, so one space too).
  std::string low = python_lower(text), t;
  bool in_run = false;
  for (unsigned char c : low) {
    bool keep = (c >= 'a' && c <= 'z') || c == ' ';
    if (keep) t += static_cast<char>(c);
    else if (!in_run) t += ' ';
    in_run = !keep;
  }
  struct Span {
    std::size_t a, b, label;
  };
  std::vector<Span> spans;
  for (const auto& p : contract::kLabelPhrases) {
    // re.finditer(r"\b" + phrase): non-overlapping matches that start a word. A phrase starts
    // with a-z (edge/contract.py checks), so a word starts where the text does or after a space.
    std::string_view phrase(p.phrase);
    for (std::size_t from = 0, pos; (pos = t.find(phrase, from)) != std::string::npos;) {
      bool word_start = pos == 0 || t[pos - 1] == ' ';
      if (word_start) spans.push_back({pos, pos + phrase.size(), p.label});
      from = word_start ? pos + phrase.size() : pos + 1;
    }
  }
  // Longest first; equal lengths keep the scan order (Python's sort is stable).
  std::stable_sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.b - x.a > y.b - y.a; });
  std::vector<Span> taken;
  for (const auto& s : spans) {
    bool free = std::all_of(taken.begin(), taken.end(), [&](const Span& o) { return s.b <= o.a || o.b <= s.a; });
    bool named = std::any_of(taken.begin(), taken.end(), [&](const Span& o) { return o.label == s.label; });
    if (free && !named) taken.push_back(s);
  }
  std::sort(taken.begin(), taken.end(), [](const Span& x, const Span& y) { return x.a < y.a; });  // disjoint
  std::vector<std::string> out;
  for (const auto& s : taken) out.push_back(contract::kAudioEvents[s.label]);
  return out;
}

std::optional<bool> answer_matches(const std::string& answer, const std::optional<std::string>& gold) {
  if (!gold || gold->empty()) return std::nullopt;
  return python_lower(python_strip(answer)) == python_lower(python_strip(*gold));
}

bool is_unknown(const std::string& answer) {
  std::string a = python_lower(python_strip(answer));
  return a.empty() || a == contract::kUnknown;
}

}  // namespace earshot
