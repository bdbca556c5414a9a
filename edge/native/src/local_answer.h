// Answering a wearer's question on the device: a port of shared/answering.py (which
// edge/local_answer.py re-exports; see its table of kinds). The question is read with the
// wearer-query contract (queries.h); the look-backs, episode and "latest moment" rules, the
// actions and activities and the answer words come from the generated contract.
#pragma once
#include <string>
#include <vector>

#include "queries.h"

namespace earshot {

struct Detection {
  double t_s;
  std::string label;
  double score;
};

// shared.answering.DetectionMemory: sounds (audio events) and the wearer's actions (visual
// actions, "seen") kept apart, each in the order added; other labels (object states) are ignored.
class LocalMemory {
 public:
  void add(double t_s, const std::string& label, double score);
  // Sounds detected in [t_s - lookback_s, t_s] (lookback < 0: all before t_s).
  std::vector<Detection> before(double t_s, double lookback_s = -1) const;
  // Actions seen in [t_s - lookback_s, t_s] (lookback < 0: all before t_s).
  std::vector<Detection> seen_before(double t_s, double lookback_s = -1) const;

 private:
  std::vector<Detection> detections_;
  std::vector<Detection> seen_;
};

std::string answer_locally(const LocalMemory& memory, const std::string& text, double t_s);

}  // namespace earshot
