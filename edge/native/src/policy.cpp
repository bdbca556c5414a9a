#include "policy.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <stdexcept>

#include "edge_contract.h"

namespace earshot {

OffloadSpec offload_spec(const std::string& kind) {
  for (auto& k : contract::kOffloadKinds)
    if (kind == k.name) return {k.frames, k.jpeg_quality, k.audio_s};
  throw std::runtime_error("unknown offload kind '" + kind + "'");
}

Action Periodic::act(const Observation& obs) {
  follow_clock(obs.t_s);
  if (obs.has_query) return OFFLOAD_FULL;
  if (obs.t_s + 1e-9 >= next_s_) {
    next_s_ = (std::floor(obs.t_s / period_s + 1e-9) + 1) * period_s;
    return OFFLOAD_LIGHT;
  }
  return OFF;
}

void AudioTrigger::reset() {
  prev_fired_.clear();
  rose_s_.clear();
  windows_.clear();
}

// edge/policy.py AudioTrigger._rising: a rising edge opens a hold [t + delay_s, t + delay_s + hold_s); a label
// still held within sustain_s of its own rising edge pushes the newest hold's end to delay_s + hold_s past this
// step. A clock that goes back (a new recording) resets everything.
bool AudioTrigger::rising(const Observation& obs) {
  follow_clock(obs.t_s);
  std::set<std::string> fired(obs.trigger_fired.begin(), obs.trigger_fired.end());
  for (auto it = rose_s_.begin(); it != rose_s_.end();) it = fired.count(it->first) ? std::next(it) : rose_s_.erase(it);
  bool any_new = false, sustained = false;
  for (auto& l : fired) {
    if (!prev_fired_.count(l)) {
      any_new = true;
      rose_s_[l] = obs.t_s;
    }
  }
  for (auto& l : fired)
    if (obs.t_s - rose_s_[l] <= sustain_s + 1e-9) sustained = true;
  prev_fired_ = std::move(fired);
  windows_.erase(std::remove_if(windows_.begin(), windows_.end(),
                                [&](const std::pair<double, double>& w) { return w.second <= obs.t_s + 1e-9; }),
                 windows_.end());
  double end = obs.t_s + delay_s + hold_s;
  if (any_new)
    windows_.push_back({obs.t_s + delay_s, end});
  else if (!windows_.empty() && sustained)
    windows_.back().second = std::max(windows_.back().second, end);
  return any_new;
}

bool AudioTrigger::watching(double t_s) const {
  for (auto& [a, b] : windows_)
    if (a - 1e-9 <= t_s && t_s < b - 1e-9) return true;
  return false;
}

Action AudioTrigger::act(const Observation& obs) {
  bool r = rising(obs);
  if (r || obs.has_query) return OFFLOAD_FULL;
  bool w = watching(obs.t_s);
  // An early rising edge sends the audio in hand at once (edge/policy.py AudioTrigger.act).
  if (!obs.trigger_early.empty()) return w ? OFFLOAD_LIGHT : OFFLOAD_AUDIO;
  return w ? LOOK : OFF;
}

bool ConfidenceThreshold::unsure(const Observation& obs) const {
  return !obs.student_confidence || obs.student_age_s > max_age_s || *obs.student_confidence < threshold;
}

Action ConfidenceThreshold::act(const Observation& obs) {
  bool r = rising(obs);
  bool watching = this->watching(obs.t_s);
  if (obs.has_query) return unsure(obs) ? OFFLOAD_FULL : LOOK;
  if (r) return unsure(obs) && obs.camera_on ? OFFLOAD_FULL : LOOK;
  if (watching) {
    if (obs.camera_on && unsure(obs) && obs.since_offload_s >= hold_s) return OFFLOAD_FULL;
    return LOOK;
  }
  return OFF;
}

void ContextAware::reset() {
  ConfidenceThreshold::reset();
  next_probe_s_ = 0.0;
}

double ContextAware::threshold_for(const Observation& obs) const {
  if (obs.battery_frac < low_battery) return threshold * obs.battery_frac / low_battery;
  return threshold;
}

bool ContextAware::unsure(const Observation& obs) const {
  return !obs.student_confidence || obs.student_age_s > max_age_s || *obs.student_confidence < threshold_for(obs);
}

Action ContextAware::send(const Observation& obs, bool camera) const {
  if (!obs.link_up || obs.pending >= max_pending || obs.link_rtt_ms > max_rtt_ms) return camera ? LOOK : OFF;
  if (!camera) return OFFLOAD_AUDIO;
  return obs.link_mbps < slow_mbps ? OFFLOAD_LIGHT : OFFLOAD_FULL;
}

Action ContextAware::act(const Observation& obs) {
  bool r = rising(obs);
  bool watching = this->watching(obs.t_s);
  bool noisy = obs.snr_db < noisy_snr_db;
  bool probe = false;
  if (noisy && obs.t_s + 1e-9 >= next_probe_s_) {
    next_probe_s_ = obs.t_s + probe_period_s;
    probe = true;
  }
  if (obs.has_query) {
    if (!unsure(obs)) return LOOK;
    return send(obs, obs.camera_on || watching || noisy);
  }
  if (r) {
    if (!obs.camera_on && !noisy) return LOOK;  // quiet context: trust the ear, let the student look first
    return unsure(obs) ? send(obs, true) : LOOK;
  }
  if (watching || probe) {
    if (obs.camera_on && unsure(obs) && obs.since_offload_s >= hold_s) return send(obs, true);
    return LOOK;
  }
  return OFF;
}

namespace {
void check_holds(const AudioTrigger& a) {
  for (auto [key, v] : {std::pair<const char*, double>{"hold_s", a.hold_s}, {"sustain_s", a.sustain_s},
                        {"delay_s", a.delay_s}})
    if (!(v >= 0 && std::isfinite(v)))
      throw std::runtime_error(a.name() + "." + key + ": must be a finite number >= 0, got " + std::to_string(v));
}
}  // namespace

std::unique_ptr<Policy> make_policy(const std::string& name, const std::map<std::string, double>& params) {
  std::unique_ptr<Policy> p;
  std::set<std::string> known;
  if (name == "audio_trigger") {
    auto a = std::make_unique<AudioTrigger>();
    known = {"hold_s", "sustain_s", "delay_s"};
    for (auto& [k, v] : params) {
      if (k == "hold_s") a->hold_s = v;
      if (k == "sustain_s") a->sustain_s = v;
      if (k == "delay_s") a->delay_s = v;
    }
    check_holds(*a);
    p = std::move(a);
  } else if (name == "confidence_threshold") {
    auto c = std::make_unique<ConfidenceThreshold>();
    known = {"hold_s", "sustain_s", "delay_s", "threshold", "max_age_s"};
    for (auto& [k, v] : params) {
      if (k == "hold_s") c->hold_s = v;
      if (k == "sustain_s") c->sustain_s = v;
      if (k == "delay_s") c->delay_s = v;
      if (k == "threshold") c->threshold = v;
      if (k == "max_age_s") c->max_age_s = v;
    }
    check_holds(*c);
    if (!(c->threshold >= 0 && c->threshold <= 1))
      throw std::runtime_error("confidence_threshold.threshold: must be in [0, 1]");
    p = std::move(c);
  } else if (name == "periodic") {
    auto q = std::make_unique<Periodic>();
    known = {"period_s"};
    for (auto& [k, v] : params)
      if (k == "period_s") q->period_s = v;
    if (!(q->period_s > 0)) throw std::runtime_error("periodic.period_s: must be > 0");
    p = std::move(q);
  } else if (name == "context_aware") {
    auto c = std::make_unique<ContextAware>();
    known = {"hold_s", "sustain_s", "delay_s", "threshold", "max_age_s", "noisy_snr_db", "probe_period_s", "low_battery", "max_pending",
             "max_rtt_ms", "slow_mbps"};
    std::map<std::string, double*> fields = {
        {"hold_s", &c->hold_s},         {"sustain_s", &c->sustain_s},        {"delay_s", &c->delay_s},        {"threshold", &c->threshold},        {"max_age_s", &c->max_age_s},
        {"noisy_snr_db", &c->noisy_snr_db}, {"probe_period_s", &c->probe_period_s}, {"low_battery", &c->low_battery},
        {"max_pending", &c->max_pending}, {"max_rtt_ms", &c->max_rtt_ms},     {"slow_mbps", &c->slow_mbps}};
    for (auto& [k, v] : params)
      if (fields.count(k)) *fields[k] = v;
    check_holds(*c);
    if (!(c->threshold >= 0 && c->threshold <= 1))
      throw std::runtime_error("context_aware.threshold: must be in [0, 1]");
    if (c->max_pending != std::floor(c->max_pending)) throw std::runtime_error("context_aware.max_pending: must be an integer");
    p = std::move(c);
  } else {
    throw std::runtime_error("policy: unknown '" + name +
                             "'; the native runtime has periodic, audio_trigger, confidence_threshold, context_aware");
  }
  for (auto& [k, v] : params)
    if (!known.count(k)) throw std::runtime_error("policy " + name + ": unknown parameter '" + k + "'");
  p->reset();
  return p;
}

}  // namespace earshot
