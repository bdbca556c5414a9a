// Recording inputs: audio.wav (16-bit mono PCM), the raw frame file that
// edge/native/decode_frames.py writes from video.mp4, annotations.json
// queries, and JPEG encoding (frames are never resized here: the AV program
// resizes inside its graph, shared/frames.py).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace earshot {

struct Wav {
  int rate_hz = 0;
  std::vector<int16_t> pcm;
};
// Reads a RIFF/WAVE file with one channel of 16-bit PCM. Throws std::runtime_error.
Wav read_wav(const std::string& path);

// The frame file (little-endian), documented in edge/native/README.md:
//   magic "ESFRAME1" (8 bytes), uint32 n, uint32 height, uint32 width, uint32 channels (3),
//   n x float64 timestamps (s, recording clock, non-decreasing),
//   n x height x width x 3 uint8 RGB, row-major (NHWC).
struct Frames {
  uint32_t n = 0, height = 0, width = 0;
  std::vector<double> times_s;
  std::vector<uint8_t> rgb;
  const uint8_t* frame(size_t i) const { return rgb.data() + i * height * width * 3; }
};
Frames read_frames(const std::string& path);

// Baseline JPEG (libjpeg, 4:2:0) of an RGB frame at libjpeg quality 1..100;
// odd sizes are cropped to even, as edge/jpeg.py does.
std::vector<uint8_t> encode_jpeg(const uint8_t* rgb, int height, int width, int quality);

struct Query {
  std::string id, text;
  double t_s = 0.0;
  std::optional<std::string> answer;  // gold answer, if any
};
struct Annotations {
  std::string recording_id;
  std::vector<Query> queries;  // sorted by t_s (stable)
};
Annotations read_annotations(const std::string& path);

}  // namespace earshot
