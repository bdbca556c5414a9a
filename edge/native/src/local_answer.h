// Answering a wearer's question on the device: a port of edge/local_answer.py
// (same patterns, synonyms, look-back and episode rules; see its docstring).
#pragma once
#include <string>
#include <vector>

namespace earshot {

constexpr double kLookbackS = 10.0;
constexpr double kEpisodeGapS = 1.0;
inline const char* kUnknown = "unknown";

// The taxonomy's audio events (shared/labels.py names("audio_event")), in order.
const std::vector<std::string>& audio_event_labels();

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

std::string query_kind(const std::string& text);
std::vector<std::string> labels_named(const std::string& text);
std::string answer_locally(const LocalMemory& memory, const std::string& text, double t_s);

}  // namespace earshot
