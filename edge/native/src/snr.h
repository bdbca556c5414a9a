// A cheap SNR estimate from the microphone alone: a port of edge/snr.py
// (read its docstring). context_aware reads it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace earshot {

constexpr double kSnrFrameS = 0.02, kSnrMinDb = -10.0, kSnrMaxDb = 50.0;

double estimate_snr_db(const int16_t* pcm, size_t n, int rate_hz);

}  // namespace earshot
