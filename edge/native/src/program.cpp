#include "program.h"

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/extension/threadpool/threadpool_guard.h>

#include <cstring>
#include <stdexcept>

namespace earshot {

using executorch::aten::ScalarType;
using executorch::extension::from_blob;
using executorch::extension::TensorPtr;
using executorch::extension::module::Module;
using executorch::runtime::Error;
using executorch::runtime::EValue;

static ScalarType scalar_type(const std::string& dtype) {
  if (dtype == "int16") return ScalarType::Short;
  if (dtype == "uint8") return ScalarType::Byte;
  if (dtype == "float32") return ScalarType::Float;
  if (dtype == "int32") return ScalarType::Int;
  throw std::runtime_error("unsupported dtype in model card: " + dtype);
}

Program::Program(const std::string& pte_path) : path_(pte_path), card_(load_model_card(pte_path)) {
  check_program(card_, pte_path);  // before loading: never run a program its card does not describe
  // Mmap: the program's constant data stays in the page cache, not on the heap.
  module_ = std::make_unique<Module>(pte_path, Module::LoadMode::Mmap);
  Error err = module_->load_method("forward");
  if (err != Error::Ok)
    throw std::runtime_error(pte_path + ": cannot load method 'forward' (ExecuTorch error " +
                             std::to_string(static_cast<int>(err)) + ")");
}

Program::~Program() = default;

std::vector<std::vector<float>> Program::run(const std::vector<const void*>& inputs) {
  if (inputs.size() != card_.inputs.size())
    throw std::runtime_error(path_ + ": expected " + std::to_string(card_.inputs.size()) + " inputs");
  // The tensors wrap the caller's buffers (no copy); ExecuTorch copies them
  // into the method's planned input memory inside execute().
  std::vector<TensorPtr> tensors;
  std::vector<EValue> values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto& spec = card_.inputs[i];
    std::vector<executorch::aten::SizesType> sizes(spec.shape.begin(), spec.shape.end());
    tensors.push_back(from_blob(const_cast<void*>(inputs[i]), sizes, scalar_type(spec.dtype)));
    values.emplace_back(tensors.back());
  }
  auto result = module_->forward(values);
  if (!result.ok())
    throw std::runtime_error(path_ + ": forward failed (ExecuTorch error " +
                             std::to_string(static_cast<int>(result.error())) + ")");
  std::vector<std::vector<float>> outs;
  for (auto& ev : *result) {
    if (!ev.isTensor()) throw std::runtime_error(path_ + ": output is not a tensor");
    auto t = ev.toTensor();
    if (t.scalar_type() != ScalarType::Float) throw std::runtime_error(path_ + ": output is not float32");
    const float* p = t.const_data_ptr<float>();
    outs.emplace_back(p, p + t.numel());
  }
  return outs;
}

void use_single_thread() { executorch::extension::threadpool::NoThreadPoolGuard::set_enabled(true); }

}  // namespace earshot
