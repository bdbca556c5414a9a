// Offloading policies ported from edge/policy.py (same names, parameters,
// defaults and decisions): periodic, audio_trigger, confidence_threshold and
// context_aware. Offload kinds come from the generated edge_contract.h.
#pragma once
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace earshot {

constexpr double kInf = std::numeric_limits<double>::infinity();

// What a policy sees at the start of a step (edge.policy.Observation; the
// fields the ported policies do not read are kept for the log and parity).
struct Observation {
  double t_s = 0.0;
  std::vector<std::string> trigger_fired;
  std::vector<std::string> trigger_early;  // the early stage's rising edges (empty without one)
  std::optional<double> student_confidence;
  double student_age_s = kInf;
  double snr_db = 20.0;
  double battery_frac = 1.0;
  bool link_up = true;
  double link_rtt_ms = 40.0, link_mbps = 80.0;
  double since_offload_s = kInf;
  int pending = 0;
  bool has_query = false;
  bool camera_on = false;
};

struct Action {
  bool camera = false, student = false;
  std::string offload = "none";  // none | light | full | audio
};
inline const Action OFF{false, false, "none"};
inline const Action LOOK{true, true, "none"};
inline const Action OFFLOAD_LIGHT{true, true, "light"};
inline const Action OFFLOAD_FULL{true, true, "full"};
inline const Action OFFLOAD_AUDIO{false, false, "audio"};

struct OffloadSpec {
  int frames;
  int jpeg_quality;
  double audio_s;
};
// edge.policy.OFFLOAD_SPECS, from edge_contract.h. Throws std::runtime_error for an unknown kind.
OffloadSpec offload_spec(const std::string& kind);

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string name() const = 0;
  virtual void reset() = 0;
  virtual Action act(const Observation& obs) = 0;
  // Parameters in dataclass field order (the start event's policy_params).
  virtual std::vector<std::pair<std::string, double>> params() const = 0;

 protected:
  // edge/policy.py _Base._follow_clock: reset when the clock goes back (a new recording).
  void follow_clock(double t_s) {
    if (t_s < last_t_ - 1e-9) reset();
    last_t_ = t_s;
  }

 private:
  double last_t_ = -kInf;
};

class Periodic : public Policy {
 public:
  double period_s = 2.0;
  std::string name() const override { return "periodic"; }
  void reset() override { next_s_ = 0.0; }
  Action act(const Observation& obs) override;
  std::vector<std::pair<std::string, double>> params() const override { return {{"period_s", period_s}}; }

 private:
  double next_s_ = 0.0;
};

class AudioTrigger : public Policy {
 public:
  // edge/policy.py AudioTrigger: a 3 s hold after a 1.5 s delay (issue 17's camera target)
  double hold_s = 3.0, sustain_s = 0.0, delay_s = 1.5;
  std::string name() const override { return "audio_trigger"; }
  void reset() override;
  Action act(const Observation& obs) override;
  std::vector<std::pair<std::string, double>> params() const override {
    return {{"hold_s", hold_s}, {"sustain_s", sustain_s}, {"delay_s", delay_s}};
  }

 protected:
  bool rising(const Observation& obs);
  bool watching(double t_s) const;  // whether a hold covers the step ending at t_s
  std::set<std::string> prev_fired_;
  std::map<std::string, double> rose_s_;                // when each held label last rose
  std::vector<std::pair<double, double>> windows_;      // [start, end) of each hold ahead or running
};

class ConfidenceThreshold : public AudioTrigger {
 public:
  ConfidenceThreshold() {  // its own defaults, as in Python (the hold also spaces its offloads)
    hold_s = 2.0;
    delay_s = 0.0;
  }
  double threshold = 0.6, max_age_s = 1.0;
  std::string name() const override { return "confidence_threshold"; }
  Action act(const Observation& obs) override;
  std::vector<std::pair<std::string, double>> params() const override {
    return {{"hold_s", hold_s}, {"sustain_s", sustain_s}, {"delay_s", delay_s}, {"threshold", threshold},
            {"max_age_s", max_age_s}};
  }

 protected:
  virtual bool unsure(const Observation& obs) const;
};

class ContextAware : public ConfidenceThreshold {
 public:
  double noisy_snr_db = 5.0, probe_period_s = 4.0, low_battery = 0.2, max_pending = 2, max_rtt_ms = 500.0,
         slow_mbps = 5.0;
  std::string name() const override { return "context_aware"; }
  void reset() override;
  Action act(const Observation& obs) override;
  std::vector<std::pair<std::string, double>> params() const override {
    return {{"hold_s", hold_s},           {"sustain_s", sustain_s},           {"delay_s", delay_s},
            {"threshold", threshold},     {"max_age_s", max_age_s},           {"noisy_snr_db", noisy_snr_db}, {"probe_period_s", probe_period_s}, {"low_battery", low_battery},
            {"max_pending", max_pending}, {"max_rtt_ms", max_rtt_ms},     {"slow_mbps", slow_mbps}};
  }

 protected:
  bool unsure(const Observation& obs) const override;

 private:
  double threshold_for(const Observation& obs) const;
  Action send(const Observation& obs, bool camera) const;
  double next_probe_s_ = 0.0;
};

// Builds a policy from its name and "key=value" parameters; throws
// std::runtime_error naming an unknown policy or parameter, or a bad value.
std::unique_ptr<Policy> make_policy(const std::string& name, const std::map<std::string, double>& params);

}  // namespace earshot
