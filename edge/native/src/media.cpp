#include "media.h"

#include <jpeglib.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace earshot {

static std::vector<char> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

template <typename T>
static T get(const std::vector<char>& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}

Wav read_wav(const std::string& path) {
  auto b = slurp(path);
  if (b.size() < 12 || std::memcmp(b.data(), "RIFF", 4) || std::memcmp(b.data() + 8, "WAVE", 4))
    throw std::runtime_error(path + ": not a RIFF/WAVE file");
  Wav w;
  bool fmt_ok = false;
  size_t off = 12;
  while (off + 8 <= b.size()) {
    uint32_t size = get<uint32_t>(b, off + 4);
    size_t body = off + 8;
    if (!std::memcmp(b.data() + off, "fmt ", 4)) {
      if (size < 16 || body + 16 > b.size()) throw std::runtime_error(path + ": short fmt chunk");
      uint16_t format = get<uint16_t>(b, body), channels = get<uint16_t>(b, body + 2);
      uint16_t bits = get<uint16_t>(b, body + 14);
      w.rate_hz = static_cast<int>(get<uint32_t>(b, body + 4));
      if ((format != 1 && format != 0xFFFE) || channels != 1 || bits != 16)
        throw std::runtime_error(path + ": expected mono 16-bit PCM");
      fmt_ok = true;
    } else if (!std::memcmp(b.data() + off, "data", 4)) {
      if (!fmt_ok) throw std::runtime_error(path + ": data before fmt");
      size_t n = std::min<size_t>(size, b.size() - body) / 2;
      w.pcm.resize(n);
      std::memcpy(w.pcm.data(), b.data() + body, n * 2);
      return w;
    }
    off = body + size + (size & 1);
  }
  throw std::runtime_error(path + ": no data chunk");
}

Frames read_frames(const std::string& path) {
  auto b = slurp(path);
  if (b.size() < 24 || std::memcmp(b.data(), "ESFRAME1", 8)) throw std::runtime_error(path + ": not a frame file (magic ESFRAME1)");
  Frames f;
  f.n = get<uint32_t>(b, 8);
  f.height = get<uint32_t>(b, 12);
  f.width = get<uint32_t>(b, 16);
  if (get<uint32_t>(b, 20) != 3) throw std::runtime_error(path + ": expected 3 channels");
  size_t need = 24 + size_t{f.n} * 8 + size_t{f.n} * f.height * f.width * 3;
  if (b.size() != need) throw std::runtime_error(path + ": size does not match its header");
  f.times_s.resize(f.n);
  std::memcpy(f.times_s.data(), b.data() + 24, size_t{f.n} * 8);
  f.rgb.assign(b.begin() + 24 + size_t{f.n} * 8, b.end());
  return f;
}

namespace {
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
};
void on_jpeg_error(j_common_ptr cinfo) { std::longjmp(reinterpret_cast<JpegError*>(cinfo->err)->jump, 1); }
}  // namespace

std::vector<uint8_t> encode_jpeg(const uint8_t* rgb, int h, int w, int quality) {
  int eh = h / 2 * 2, ew = w / 2 * 2;
  jpeg_compress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = on_jpeg_error;
  unsigned char* mem = nullptr;
  unsigned long size = 0;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&cinfo);
    free(mem);
    throw std::runtime_error("JPEG encoding failed");
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &mem, &size);
  cinfo.image_width = ew;
  cinfo.image_height = eh;
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);  // YCbCr 4:2:0, baseline
  jpeg_set_quality(&cinfo, std::clamp(quality, 1, 100), TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(rgb + size_t(cinfo.next_scanline) * w * 3);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<uint8_t> out(mem, mem + size);
  jpeg_destroy_compress(&cinfo);
  free(mem);
  return out;
}

Annotations read_annotations(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  Annotations a;
  try {
    nlohmann::json j;
    in >> j;
    a.recording_id = j.at("recording_id").get<std::string>();
    if (j.contains("queries"))
      for (auto& q : j["queries"]) {
        Query x;
        x.id = q.at("id").get<std::string>();
        x.text = q.at("text").get<std::string>();
        x.t_s = q.at("t_s").get<double>();
        if (q.contains("answer") && q["answer"].is_string()) x.answer = q["answer"].get<std::string>();
        a.queries.push_back(std::move(x));
      }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  std::stable_sort(a.queries.begin(), a.queries.end(), [](auto& x, auto& y) { return x.t_s < y.t_s; });
  return a;
}

}  // namespace earshot
