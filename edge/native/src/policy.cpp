#include "policy.h"

#include <stdexcept>

namespace earshot {

const OffloadSpec& offload_spec(const std::string& kind) {
  static const std::map<std::string, OffloadSpec> specs = {
      {"light", {1, 50, 2.0}}, {"full", {4, 75, 5.0}}, {"audio", {0, 0, 5.0}}};
  auto it = specs.find(kind);
  if (it == specs.end()) throw std::runtime_error("unknown offload kind '" + kind + "'");
  return it->second;
}

void AudioTrigger::reset() {
  prev_fired_.clear();
  on_until_ = -kInf;
}

bool AudioTrigger::rising(const Observation& obs) {
  std::set<std::string> fired(obs.trigger_fired.begin(), obs.trigger_fired.end());
  bool any_new = false;
  for (auto& l : fired)
    if (!prev_fired_.count(l)) any_new = true;
  prev_fired_ = std::move(fired);
  if (any_new) on_until_ = obs.t_s + hold_s;
  return any_new;
}

Action AudioTrigger::act(const Observation& obs) {
  bool r = rising(obs);
  if (r || obs.has_query) return OFFLOAD_FULL;
  return obs.t_s < on_until_ - 1e-9 ? LOOK : OFF;
}

bool ConfidenceThreshold::unsure(const Observation& obs) const {
  return !obs.student_confidence || obs.student_age_s > max_age_s || *obs.student_confidence < threshold;
}

Action ConfidenceThreshold::act(const Observation& obs) {
  bool r = rising(obs);
  bool watching = obs.t_s < on_until_ - 1e-9;
  if (obs.has_query) return unsure(obs) ? OFFLOAD_FULL : LOOK;
  if (r) return unsure(obs) && obs.camera_on ? OFFLOAD_FULL : LOOK;
  if (watching) {
    if (obs.camera_on && unsure(obs) && obs.since_offload_s >= hold_s) return OFFLOAD_FULL;
    return LOOK;
  }
  return OFF;
}

std::unique_ptr<Policy> make_policy(const std::string& name, const std::map<std::string, double>& params) {
  std::unique_ptr<Policy> p;
  std::set<std::string> known;
  if (name == "audio_trigger") {
    auto a = std::make_unique<AudioTrigger>();
    known = {"hold_s"};
    for (auto& [k, v] : params)
      if (k == "hold_s") a->hold_s = v;
    if (!(a->hold_s >= 0)) throw std::runtime_error("audio_trigger.hold_s: must be >= 0");
    p = std::move(a);
  } else if (name == "confidence_threshold") {
    auto c = std::make_unique<ConfidenceThreshold>();
    known = {"hold_s", "threshold", "max_age_s"};
    for (auto& [k, v] : params) {
      if (k == "hold_s") c->hold_s = v;
      if (k == "threshold") c->threshold = v;
      if (k == "max_age_s") c->max_age_s = v;
    }
    if (!(c->hold_s >= 0)) throw std::runtime_error("confidence_threshold.hold_s: must be >= 0");
    if (!(c->threshold >= 0 && c->threshold <= 1))
      throw std::runtime_error("confidence_threshold.threshold: must be in [0, 1]");
    p = std::move(c);
  } else {
    throw std::runtime_error("policy: unknown '" + name + "'; the native runtime has audio_trigger, confidence_threshold");
  }
  for (auto& [k, v] : params)
    if (!known.count(k)) throw std::runtime_error("policy " + name + ": unknown parameter '" + k + "'");
  p->reset();
  return p;
}

}  // namespace earshot
