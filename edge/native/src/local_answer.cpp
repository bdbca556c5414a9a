#include "local_answer.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "edge_contract.h"

// A query kind added to the contract must get its answer here: an unhandled enum value in the
// switch below fails the build (rather than falling silently to "the most recent sound").
#pragma GCC diagnostic error "-Wswitch"

namespace earshot {

namespace {

template <std::size_t N>
bool one_of(const std::string& label, const char* const (&names)[N]) {
  return std::any_of(std::begin(names), std::end(names), [&](const char* n) { return label == n; });
}

std::vector<Detection> window(const std::vector<Detection>& dets, double t_s, double lookback_s) {
  double lo = lookback_s < 0 ? -1e300 : t_s - lookback_s;
  std::vector<Detection> out;
  for (auto& d : dets)
    if (lo <= d.t_s && d.t_s <= t_s + 1e-9) out.push_back(d);
  return out;
}

}  // namespace

void LocalMemory::add(double t_s, const std::string& label, double score) {
  if (one_of(label, contract::kAudioEvents)) detections_.push_back({t_s, label, score});
  else if (one_of(label, contract::kVisualActions)) seen_.push_back({t_s, label, score});
}

std::vector<Detection> LocalMemory::before(double t_s, double lookback_s) const {
  return window(detections_, t_s, lookback_s);
}

std::vector<Detection> LocalMemory::seen_before(double t_s, double lookback_s) const {
  return window(seen_, t_s, lookback_s);
}

namespace {

// shared.answering._latest: among the detections of the latest moment (within kSameMomentS of
// the most recent), the most confident one's label; "" when there are none.
std::string latest(const std::vector<Detection>& dets) {
  if (dets.empty()) return "";
  double newest = -1e300;
  for (auto& d : dets) newest = std::max(newest, d.t_s);
  const Detection* best = nullptr;
  for (auto& d : dets)  // max(): the first of equal scores
    if (d.t_s >= newest - contract::kSameMomentS && (!best || d.score > best->score)) best = &d;
  return best->label;
}

// The latest-moment distinct sound (kDistinctSounds) within kLookbackS; without one, the
// latest-moment sound of any kind (shared.answering: a sound that goes on must not hide a beep).
std::string most_recent(const LocalMemory& m, double t_s) {
  auto recent = m.before(t_s, contract::kLookbackS);
  std::vector<Detection> distinct;
  for (auto& d : recent)
    if (one_of(d.label, contract::kDistinctSounds)) distinct.push_back(d);
  std::string r = latest(distinct);
  return r.empty() ? latest(recent) : r;
}

// The latest-moment action of `names` (kActions or kActivities) seen within lookback_s.
template <std::size_t N>
std::string latest_seen(const LocalMemory& m, double t_s, double lookback_s, const char* const (&names)[N]) {
  std::vector<Detection> dets;
  for (auto& d : m.seen_before(t_s, lookback_s))
    if (one_of(d.label, names)) dets.push_back(d);
  return latest(dets);
}

int episodes(const LocalMemory& m, double t_s, const std::string& label) {
  std::vector<double> times;
  for (auto& d : m.before(t_s))
    if (d.label == label) times.push_back(d.t_s);
  int n = 0;
  for (size_t i = 0; i < times.size(); ++i)
    if (i == 0 || times[i] - times[i - 1] > contract::kEpisodeGapS) ++n;
  return n;
}

// Of the first two sounds named, the one heard first; the first named if neither was heard.
std::string first_heard(const LocalMemory& m, double t_s, const std::vector<std::string>& named) {
  std::vector<std::pair<std::string, double>> firsts;  // insertion order, like a dict
  for (auto& d : m.before(t_s)) {
    bool wanted = d.label == named[0] || (named.size() > 1 && d.label == named[1]);
    bool seen = std::any_of(firsts.begin(), firsts.end(), [&](auto& f) { return f.first == d.label; });
    if (wanted && !seen) firsts.emplace_back(d.label, d.t_s);
  }
  if (firsts.empty()) return named[0];
  auto best = firsts.begin();  // min(): the first of equal times
  for (auto it = firsts.begin(); it != firsts.end(); ++it)
    if (it->second < best->second) best = it;
  return best->first;
}

bool heard_any(const LocalMemory& m, double t_s, const std::vector<std::string>& named) {
  auto before = m.before(t_s);
  return std::any_of(before.begin(), before.end(),
                     [&](auto& d) { return std::find(named.begin(), named.end(), d.label) != named.end(); });
}

}  // namespace

std::string answer_locally(const LocalMemory& memory, const std::string& text, double t_s) {
  QueryKind kind = query_kind(text);
  auto named = labels_named(text);
  switch (kind) {
    case QueryKind::kAction: {  // "what did I just do?": only what the camera saw, never a sound
      std::string r = latest_seen(memory, t_s, contract::kActionLookbackS, contract::kActions);
      return r.empty() ? contract::kUnknown : r;
    }
    case QueryKind::kActivity: {  // "what am I doing?": the activity seen in the last second
      std::string r = latest_seen(memory, t_s, contract::kActivityLookbackS, contract::kActivities);
      return r.empty() ? contract::kUnknown : r;
    }
    case QueryKind::kOrder:
      if (!named.empty()) return first_heard(memory, t_s, named);
      break;
    case QueryKind::kYesNo:
      if (!named.empty()) return heard_any(memory, t_s, named) ? contract::kYes : contract::kNo;
      break;
    case QueryKind::kCount:
      if (!named.empty()) return std::to_string(episodes(memory, t_s, named[0]));
      break;
    case QueryKind::kSoundId:  // "what was that?", "why did I ...?": the most recent distinct sound
    case QueryKind::kWhy:
    case QueryKind::kWhyStop:
    case QueryKind::kObject:  // no speech model on the device: the most recent sound, or unknown
    case QueryKind::kOther:
      break;
  }
  std::string r = most_recent(memory, t_s);
  return r.empty() ? contract::kUnknown : r;
}

}  // namespace earshot
