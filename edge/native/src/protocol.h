// Earshot wire protocol v1 (docs/protocol.md): limits, canonical encoders for
// the client's messages (infer, ping) and a bounded decoder for the server's
// replies (result, error, pong, stats). The Python reference is shared/protocol.py.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace earshot::protocol {

constexpr int kVersion = 1;
// Section 8 limits (names as in shared/protocol.py).
constexpr size_t MAX_MESSAGE_BYTES = 8u * 1024 * 1024;
constexpr size_t MAX_DEPTH = 8;
constexpr size_t MAX_OBJECTS = 8192;
constexpr size_t MAX_ARRAY_LEN = 1024;
constexpr size_t MAX_MAP_LEN = 1024;
constexpr size_t MAX_STR_BYTES = 16384;
constexpr size_t MAX_BIN_BYTES = 4u * 1024 * 1024;
constexpr size_t MAX_FRAMES = 64;
constexpr size_t MAX_JPEG_BYTES = 1024 * 1024;
constexpr double MAX_AUDIO_S = 30.0;
constexpr size_t MAX_LABELS = 1024;
constexpr size_t MAX_LABEL_BYTES = 128;
constexpr size_t MAX_QUERY_BYTES = 4096;
constexpr size_t MAX_ANSWER_BYTES = 16384;
constexpr size_t MAX_ERROR_TEXT_BYTES = 1024;
constexpr size_t MAX_MODEL_ID_BYTES = 128;
constexpr int64_t MAX_DEADLINE_MS = 60000;
constexpr int64_t MAX_RETRY_AFTER_MS = 60000;
constexpr size_t MAX_TIMING_STAGES = 32;
constexpr int64_t MAX_BATCH_SIZE = 1024;

// A message that fails to decode (or a request too large to encode).
// `code` is a protocol error code: bad_request, too_large, unsupported_version,
// unsupported_kind.
struct ProtocolError : std::runtime_error {
  std::string code;
  ProtocolError(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

struct Frame {
  double t_s = 0.0;
  std::vector<uint8_t> jpeg;
};

struct AudioWindow {
  double start_s = 0.0;
  int64_t rate_hz = 16000;
  std::vector<int16_t> pcm;  // little-endian on the wire; this CPU is little-endian
};

struct InferRequest {
  uint64_t id = 0;
  int64_t deadline_ms = 800;
  std::string trigger_label;
  double trigger_score = 0.0;
  std::map<std::string, double> student_scores;  // sorted keys: canonical
  double student_confidence = 0.0;
  std::optional<std::string> query;
  std::optional<double> query_t_s;
  std::optional<std::string> model;
  std::optional<AudioWindow> audio;
  std::vector<Frame> frames;
};

// Canonical encodings (section 3). Throw ProtocolError(too_large) above
// MAX_MESSAGE_BYTES, bad_request for a request that violates a field rule.
std::string encode_infer(const InferRequest& req);
std::string encode_ping(uint64_t id, double t_client_s);

// A decoded server reply. `kind` is result | error | pong | stats.
struct Reply {
  std::string kind;
  std::optional<uint64_t> id;  // nil only in `error`
  size_t wire_bytes = 0;       // payload size as received
  // result
  std::string model_id;
  int64_t batch_size = 0;
  std::string answer;
  std::map<std::string, double> tags;
  std::map<std::string, double> timing_ms;
  // error
  std::string code, message;
  std::optional<int64_t> retry_after_ms;
  // pong
  double t_client_s = 0.0;
  bool ready = false;
};

// Decodes one reply payload, checking section 3's order and section 8's limits.
// Throws ProtocolError and nothing else, for any input.
Reply decode_reply(const uint8_t* data, size_t size);

}  // namespace earshot::protocol
