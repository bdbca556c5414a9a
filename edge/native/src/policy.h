// Offloading policies ported from edge/policy.py (same names, parameters,
// defaults and decisions): audio_trigger and confidence_threshold.
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
  std::optional<double> student_confidence;
  double student_age_s = kInf;
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
inline const Action OFFLOAD_FULL{true, true, "full"};

struct OffloadSpec {
  int frames;
  int jpeg_quality;
  double audio_s;
};
// edge.policy.OFFLOAD_SPECS
const OffloadSpec& offload_spec(const std::string& kind);

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string name() const = 0;
  virtual void reset() = 0;
  virtual Action act(const Observation& obs) = 0;
  // Parameters in dataclass field order (the start event's policy_params).
  virtual std::vector<std::pair<std::string, double>> params() const = 0;
};

class AudioTrigger : public Policy {
 public:
  double hold_s = 2.0;
  std::string name() const override { return "audio_trigger"; }
  void reset() override;
  Action act(const Observation& obs) override;
  std::vector<std::pair<std::string, double>> params() const override { return {{"hold_s", hold_s}}; }

 protected:
  bool rising(const Observation& obs);
  std::set<std::string> prev_fired_;
  double on_until_ = -kInf;
};

class ConfidenceThreshold : public AudioTrigger {
 public:
  double threshold = 0.6, max_age_s = 1.0;
  std::string name() const override { return "confidence_threshold"; }
  Action act(const Observation& obs) override;
  std::vector<std::pair<std::string, double>> params() const override {
    return {{"hold_s", hold_s}, {"threshold", threshold}, {"max_age_s", max_age_s}};
  }

 private:
  bool unsure(const Observation& obs) const;
};

// Builds a policy from its name and "key=value" parameters; throws
// std::runtime_error naming an unknown policy or parameter, or a bad value.
std::unique_ptr<Policy> make_policy(const std::string& name, const std::map<std::string, double>& params);

}  // namespace earshot
