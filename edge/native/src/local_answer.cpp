#include "local_answer.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <regex>
#include <set>
#include <tuple>

#include "edge_contract.h"

namespace earshot {

const std::vector<std::string>& audio_event_labels() {
  static const std::vector<std::string> labels(std::begin(contract::kAudioEvents), std::end(contract::kAudioEvents));
  return labels;
}

// edge.local_answer._SYNONYMS, through the generated contract.
static const std::map<std::string, std::vector<std::string>>& synonyms() {
  static const std::map<std::string, std::vector<std::string>> s = [] {
    std::map<std::string, std::vector<std::string>> m;
    for (auto& syn : contract::kSynonyms) m[syn.label].push_back(syn.phrase);
    return m;
  }();
  return s;
}

void LocalMemory::add(double t_s, const std::string& label, double score) {
  auto& a = audio_event_labels();
  if (std::find(a.begin(), a.end(), label) != a.end()) detections_.push_back({t_s, label, score});
}

std::vector<Detection> LocalMemory::before(double t_s, double lookback_s) const {
  double lo = lookback_s < 0 ? -1e300 : t_s - lookback_s;
  std::vector<Detection> out;
  for (auto& d : detections_)
    if (lo <= d.t_s && d.t_s <= t_s + 1e-9) out.push_back(d);
  return out;
}

static std::string lower_strip(const std::string& text) {
  std::string t;
  for (unsigned char c : text) t += static_cast<char>(std::tolower(c));
  auto a = t.find_first_not_of(" \t\n\r\f\v"), b = t.find_last_not_of(" \t\n\r\f\v");
  return a == std::string::npos ? "" : t.substr(a, b - a + 1);
}

static bool starts(const std::string& t, const std::string& p) { return t.compare(0, p.size(), p) == 0; }

std::string query_kind(const std::string& text) {
  std::string t = lower_strip(text);
  if (starts(t, "which came first") || t.find(" first,") != std::string::npos) return "order";
  if (starts(t, "why did i stop")) return "why_stop";
  if (starts(t, "why")) return "why";
  if (starts(t, "what was that")) return "sound_id";
  if (starts(t, "how many")) return "count";
  if (starts(t, "did ") || starts(t, "was there") || starts(t, "is there")) return "yes_no";
  return "other";
}

std::vector<std::string> labels_named(const std::string& text) {
  // re.sub(r"[^a-z ]+", " ", text.lower()): every run of other characters becomes one space.
  std::string low;
  for (unsigned char c : text) low += static_cast<char>(c < 0x80 ? std::tolower(c) : c);
  std::string t;
  bool in_run = false;
  for (unsigned char c : low) {
    bool keep = (c >= 'a' && c <= 'z') || c == ' ';
    if (keep) { t += static_cast<char>(c); in_run = false; }
    else if (!in_run) { t += ' '; in_run = true; }
  }
  std::vector<std::tuple<size_t, size_t, std::string>> spans;
  for (auto& label : audio_event_labels()) {
    std::string own = label;
    std::replace(own.begin(), own.end(), '_', ' ');
    std::vector<std::string> phrases = {own};
    auto it = synonyms().find(label);
    if (it != synonyms().end()) phrases.insert(phrases.end(), it->second.begin(), it->second.end());
    for (auto& phrase : phrases) {
      // re.search(r"\b" + phrase): the first match at a word start.
      for (size_t pos = t.find(phrase); pos != std::string::npos; pos = t.find(phrase, pos + 1)) {
        bool boundary = pos == 0 || !std::isalnum(static_cast<unsigned char>(t[pos - 1]));
        if (boundary) {
          spans.emplace_back(pos, pos + phrase.size(), label);
          break;
        }
      }
    }
  }
  // Longest first (Python's sort is stable: equal lengths keep discovery order).
  std::stable_sort(spans.begin(), spans.end(), [](auto& x, auto& y) {
    return long(std::get<0>(x)) - long(std::get<1>(x)) < long(std::get<0>(y)) - long(std::get<1>(y));
  });
  std::vector<std::tuple<size_t, size_t, std::string>> taken;
  for (auto& [a, b, label] : spans) {
    bool free = true, dup = false;
    for (auto& [x, y, l] : taken) {
      if (!(b <= x || y <= a)) free = false;
      if (l == label) dup = true;
    }
    if (free && !dup) taken.emplace_back(a, b, label);
  }
  std::sort(taken.begin(), taken.end());
  std::vector<std::string> out;
  for (auto& s : taken) out.push_back(std::get<2>(s));
  return out;
}

static std::string most_recent(const LocalMemory& m, double t_s) {
  auto recent = m.before(t_s, kLookbackS);
  if (recent.empty()) return "";
  double latest = -1e300;
  for (auto& d : recent) latest = std::max(latest, d.t_s);
  const Detection* best = nullptr;
  for (auto& d : recent)  // max(): the first of equal scores
    if (d.t_s >= latest - 0.5 && (!best || d.score > best->score)) best = &d;
  return best->label;
}

static int episodes(const LocalMemory& m, double t_s, const std::string& label) {
  std::vector<double> times;
  for (auto& d : m.before(t_s))
    if (d.label == label) times.push_back(d.t_s);
  int n = 0;
  for (size_t i = 0; i < times.size(); ++i)
    if (i == 0 || times[i] - times[i - 1] > kEpisodeGapS) ++n;
  return n;
}

std::string answer_locally(const LocalMemory& memory, const std::string& text, double t_s) {
  std::string kind = query_kind(text);
  auto named = labels_named(text);
  if (kind == "order" && !named.empty()) {
    std::vector<std::pair<std::string, double>> firsts;  // insertion order, like a dict
    for (auto& d : memory.before(t_s)) {
      bool wanted = d.label == named[0] || (named.size() > 1 && d.label == named[1]);
      bool seen = std::any_of(firsts.begin(), firsts.end(), [&](auto& f) { return f.first == d.label; });
      if (wanted && !seen) firsts.emplace_back(d.label, d.t_s);
    }
    if (firsts.empty()) return named[0];
    auto best = firsts.begin();
    for (auto it = firsts.begin(); it != firsts.end(); ++it)
      if (it->second < best->second) best = it;
    return best->first;
  }
  if (kind == "yes_no" && !named.empty()) {
    for (auto& d : memory.before(t_s))
      if (std::find(named.begin(), named.end(), d.label) != named.end()) return "yes";
    return "no";
  }
  if (kind == "count" && !named.empty()) return std::to_string(episodes(memory, t_s, named[0]));
  std::string r = most_recent(memory, t_s);
  return r.empty() ? kUnknown : r;
}

}  // namespace earshot
