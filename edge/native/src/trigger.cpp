#include "trigger.h"

#include <limits>
#include <stdexcept>

namespace earshot {

namespace {
constexpr double kTieEpsS = 1e-6;  // shared.trigger.TIE_EPS_S
}

TriggerHold::TriggerHold(std::vector<std::string> labels, std::vector<double> thresholds, double refractory_s)
    : labels_(std::move(labels)), thresholds_(std::move(thresholds)), refractory_s_(refractory_s) {
  if (labels_.size() != thresholds_.size()) throw std::runtime_error("trigger: labels and thresholds differ in length");
  if (!(refractory_s_ >= 0)) throw std::runtime_error("trigger: refractory_s must be >= 0");
  reset();
}

void TriggerHold::reset() {
  held_.assign(labels_.size(), false);
  last_over_.assign(labels_.size(), -std::numeric_limits<double>::infinity());
}

void TriggerHold::step(double t_s, const std::vector<double>& probs, std::vector<std::string>& held,
                       std::vector<std::string>& fired_now) {
  held.clear();
  fired_now.clear();
  for (size_t i = 0; i < labels_.size() && i < probs.size(); ++i) {
    // a threshold of 1 turns the label off (shared/trigger.py): int8 scores reach exactly 1.0
    bool over = thresholds_[i] < 1.0 && probs[i] >= thresholds_[i];
    if (over) {
      if (!held_[i]) {
        held_[i] = true;
        fired_now.push_back(labels_[i]);
      }
      last_over_[i] = t_s;
    } else if (held_[i] && t_s - last_over_[i] >= refractory_s_ - kTieEpsS) {
      held_[i] = false;
    }
    if (held_[i]) held.push_back(labels_[i]);
  }
}

}  // namespace earshot
