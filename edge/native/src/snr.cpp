#include "snr.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace earshot {

namespace {
constexpr double kEps = 1e-10;

// numpy.percentile's default ("linear") on sorted values.
double percentile(const std::vector<double>& sorted, double pct) {
  double pos = pct / 100.0 * double(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  double frac = pos - double(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}
}  // namespace

double estimate_snr_db(const int16_t* pcm, size_t n_samples, int rate_hz) {
  size_t n = static_cast<size_t>(kSnrFrameS * rate_hz);
  size_t k = n ? n_samples / n : 0;
  if (k < 2) return kSnrMinDb;
  std::vector<double> energy(k);
  for (size_t i = 0; i < k; ++i) {
    float acc = 0.0f;  // float32, like the einsum over float32 frames
    for (size_t j = 0; j < n; ++j) {
      float x = float(pcm[i * n + j]) / 32768.0f;
      acc += x * x;
    }
    energy[i] = double(acc / float(n));
  }
  std::sort(energy.begin(), energy.end());
  double lo = percentile(energy, 10.0), hi = percentile(energy, 90.0);
  double snr = 10.0 * std::log10(std::max(hi - lo, kEps) / std::max(lo, kEps));
  return std::clamp(snr, kSnrMinDb, kSnrMaxDb);
}

}  // namespace earshot
