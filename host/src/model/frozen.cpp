// TorchScript models frozen for inference (host/src/model/frozen.rs): libtorch's C++
// torch::jit::freeze and torch::jit::optimize_for_inference, which tch does not bind. The
// frozen module folds batch norms into convolutions and runs them through oneDNN; it has no
// autograd, so the host uses it for forward passes without gradients only.
//
// Tensors cross as tch's handles (`at::Tensor*`, torch-sys's `C_tensor`). Every function
// catches libtorch's exceptions and returns its message in `err` instead.
#include <torch/script.h>

#include <cstring>
#include <exception>
#include <string>

namespace {

void fail(char* err, size_t len, const char* what) {
  if (len == 0) return;
  std::strncpy(err, what, len - 1);
  err[len - 1] = '\0';
}

}  // namespace

extern "C" {

// The module at `path`, on CPU, in eval mode, frozen and optimised; null on failure.
void* esegeta_frozen_load(const char* path, char* err, size_t err_len) {
  try {
    auto module = torch::jit::load(path, torch::kCPU);
    module.eval();
    auto frozen = torch::jit::freeze(module);
    return new torch::jit::Module(torch::jit::optimize_for_inference(frozen));
  } catch (const std::exception& e) {
    fail(err, err_len, e.what());
    return nullptr;
  }
}

void esegeta_frozen_free(void* module) {
  delete static_cast<torch::jit::Module*>(module);
}

// forward(input) without gradients: a new tensor the caller owns, or null on failure (and
// when the output is not a single tensor).
void* esegeta_frozen_forward(void* module, void* input, char* err, size_t err_len) {
  try {
    torch::NoGradGuard no_grad;
    auto& m = *static_cast<torch::jit::Module*>(module);
    auto out = m.forward({*static_cast<at::Tensor*>(input)});
    if (!out.isTensor()) {
      fail(err, err_len, "the frozen model's output is not a single tensor");
      return nullptr;
    }
    return new at::Tensor(out.toTensor());
  } catch (const std::exception& e) {
    fail(err, err_len, e.what());
    return nullptr;
  }
}

}  // extern "C"
