// One exported .pte program run through ExecuTorch's Module facade.
//
// Ownership: Program owns its Module (which owns the loaded program, the
// planned memory and the method). Input buffers are owned by the caller and
// must outlive run(); outputs are copied into plain vectors before run()
// returns, so nothing aliases the Module's arenas afterwards.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "card.h"

namespace executorch::extension::module {
class Module;
}

namespace earshot {

class Program {
 public:
  // Loads `pte_path` and its card, loads the "forward" method (so the first
  // run() pays no load cost). Throws std::runtime_error on failure.
  explicit Program(const std::string& pte_path);
  ~Program();
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  const ModelCard& card() const { return card_; }
  const std::string& path() const { return path_; }

  // Inputs in card order, each a raw buffer of numel * sizeof(dtype) bytes.
  // Returns every output as float32 values, in card order.
  std::vector<std::vector<float>> run(const std::vector<const void*>& inputs);

 private:
  std::string path_;
  ModelCard card_;
  std::unique_ptr<executorch::extension::module::Module> module_;
};

// Run XNNPACK and the kernels on the calling thread only (for the benchmark
// and for a single-core device). Thread-local: call on the thread that runs.
void use_single_thread();

}  // namespace earshot
