// The trigger's decision rule: per-label thresholds plus the refractory hold,
// a port of shared/trigger.py's TriggerHold (read its docstring). Both
// numbers come from the trigger's model card (thresholds, refractory_s).
#pragma once
#include <string>
#include <vector>

namespace earshot {

class TriggerHold {
 public:
  TriggerHold(std::vector<std::string> labels, std::vector<double> thresholds, double refractory_s);
  void reset();
  // One hop at step time t_s; `held` gets the labels held on, `fired_now` the
  // labels that triggered at this step (both in label order).
  void step(double t_s, const std::vector<double>& probs, std::vector<std::string>& held,
            std::vector<std::string>& fired_now);

 private:
  std::vector<std::string> labels_;
  std::vector<double> thresholds_;
  double refractory_s_;
  std::vector<bool> held_;
  std::vector<double> last_over_;
};

}  // namespace earshot
