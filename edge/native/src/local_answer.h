// Answering a wearer's question on the device: a port of edge/local_answer.py (see its
// docstring). The question is read with the wearer-query contract (queries.h); the look-back,
// episode and "latest moment" rules and the answer words come from the generated contract.
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

class LocalMemory {
 public:
  void add(double t_s, const std::string& label, double score);  // non-audio labels are ignored
  std::vector<Detection> before(double t_s, double lookback_s = -1) const;  // lookback < 0: all

 private:
  std::vector<Detection> detections_;
};

std::string answer_locally(const LocalMemory& memory, const std::string& text, double t_s);

}  // namespace earshot
