// Model card: the JSON file next to each .pte (shared/model_card.py writes it).
// Only the fields the edge needs are read: inputs/outputs (name, dtype, shape),
// labels, thresholds, macs, audio_window_s, frame_size_px.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace earshot {

struct TensorSpec {
  std::string name;
  std::string dtype;  // "int16", "uint8", "float32"
  std::vector<int64_t> shape;
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

struct ModelCard {
  std::string path;  // the card's own path
  std::string name;
  std::string program;  // .pte file name, relative to the card
  std::vector<TensorSpec> inputs, outputs;
  std::vector<std::string> labels;
  std::vector<double> thresholds;  // in labels order
  int64_t macs = 0;
  int64_t size_bytes = 0;
  std::string sha256;
  std::string precision = "fp32";  // "int8" | "fp32": which energy per MAC applies
  double audio_window_s = 0.0;
  double refractory_s = 0.0;  // the trigger's refractory hold (absent in older cards: 0)
  // The trigger's early stage (shared/model_card.py): empty when the card has none.
  std::vector<double> early_thresholds;  // in labels order
  int frame_size_px = 0;  // 0 when the card says null
  const TensorSpec* input(const std::string& name) const;
  const TensorSpec* output(const std::string& name) const;
};

// The card of a program: `<stem>.json` next to `<stem>.pte`. Throws
// std::runtime_error naming the file and field on any missing/ill-typed field.
ModelCard load_model_card(const std::string& pte_path);

// The program file against its card, as shared/model_card.py's check_program:
// the card names this file, and its size and sha256 match. Throws
// std::runtime_error naming the file and what differs (a corrupt or swapped program).
void check_program(const ModelCard& card, const std::string& pte_path);

}  // namespace earshot
