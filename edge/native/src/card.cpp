#include "card.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "sha256.h"

namespace earshot {

const TensorSpec* ModelCard::input(const std::string& n) const {
  for (auto& t : inputs)
    if (t.name == n) return &t;
  return nullptr;
}
const TensorSpec* ModelCard::output(const std::string& n) const {
  for (auto& t : outputs)
    if (t.name == n) return &t;
  return nullptr;
}

static std::vector<TensorSpec> tensor_specs(const nlohmann::json& arr) {
  std::vector<TensorSpec> out;
  for (auto& t : arr) {
    TensorSpec s;
    s.name = t.at("name").get<std::string>();
    s.dtype = t.at("dtype").get<std::string>();
    s.shape = t.at("shape").get<std::vector<int64_t>>();
    out.push_back(std::move(s));
  }
  return out;
}

ModelCard load_model_card(const std::string& pte_path) {
  std::string stem = pte_path;
  auto dot = stem.rfind('.');
  auto slash = stem.rfind('/');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) stem.resize(dot);
  ModelCard card;
  card.path = stem + ".json";
  std::ifstream in(card.path);
  if (!in) throw std::runtime_error(card.path + ": model card not found (expected next to " + pte_path + ")");
  nlohmann::json j;
  try {
    in >> j;
    card.name = j.at("name").get<std::string>();
    card.program = j.value("program", std::string());
    card.inputs = tensor_specs(j.at("inputs"));
    card.outputs = tensor_specs(j.at("outputs"));
    card.labels = j.at("labels").get<std::vector<std::string>>();
    auto& th = j.at("thresholds");
    for (auto& label : card.labels) card.thresholds.push_back(th.at(label).get<double>());
    card.macs = j.value("macs", int64_t{0});
    card.size_bytes = j.value("size_bytes", int64_t{0});
    card.sha256 = j.value("sha256", std::string());
    card.precision = j.value("precision", std::string("fp32"));
    if (j.contains("audio_window_s") && !j["audio_window_s"].is_null())
      card.audio_window_s = j["audio_window_s"].get<double>();
    if (j.contains("frame_size_px") && !j["frame_size_px"].is_null())
      card.frame_size_px = j["frame_size_px"].get<int>();
    card.refractory_s = j.value("refractory_s", 0.0);
    if (!(card.refractory_s >= 0.0 && card.refractory_s <= 60.0))
      throw std::runtime_error("refractory_s: must be in [0, 60] s");
    if (j.contains("early_thresholds") && !j["early_thresholds"].is_null()) {
      auto& early = j["early_thresholds"];
      for (size_t i = 0; i < card.labels.size(); ++i) {
        const std::string& label = card.labels[i];
        if (!early.contains(label))
          throw std::runtime_error("early_thresholds." + label + ": missing (every label needs one, 1 for none)");
        double v = early.at(label).get<double>();
        if (!(v >= 0.0 && v <= 1.0)) throw std::runtime_error("early_thresholds." + label + ": must be in [0, 1]");
        if (v > card.thresholds[i])
          throw std::runtime_error("early_thresholds." + label + ": above the label's threshold (an early stage fires first)");
        card.early_thresholds.push_back(v);
      }
    }
    if (card.sha256.size() != 64) throw std::runtime_error("sha256: expected 64 hex digits");
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(card.path + ": " + e.what());
  }
  return card;
}

void check_program(const ModelCard& card, const std::string& pte_path) {
  auto slash = pte_path.rfind('/');
  std::string file = slash == std::string::npos ? pte_path : pte_path.substr(slash + 1);
  if (card.program != file)
    throw std::runtime_error(pte_path + ": its card " + card.path + " describes '" + card.program + "'");
  std::ifstream in(pte_path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error(pte_path + ": no such program file");
  auto size = static_cast<int64_t>(in.tellg());
  if (size != card.size_bytes)
    throw std::runtime_error(pte_path + ": size_bytes: card " + card.path + " says " + std::to_string(card.size_bytes) +
                             ", the file has " + std::to_string(size));
  std::string digest = file_sha256(pte_path);
  if (digest != card.sha256)
    throw std::runtime_error(pte_path + ": sha256: does not match the card " + card.path + " (card " + card.sha256 +
                             ", file " + digest + "): a different or corrupted program");
}

}  // namespace earshot
