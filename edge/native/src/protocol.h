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

#include "edge_contract.h"

namespace earshot::protocol {

// Version and section 8 limits: shared/protocol.py's, through the generated contract.
constexpr int kVersion = contract::kProtocolVersion;
using contract::MAX_MESSAGE_BYTES;
using contract::MAX_DEPTH;
using contract::MAX_OBJECTS;
using contract::MAX_ARRAY_LEN;
using contract::MAX_MAP_LEN;
using contract::MAX_STR_BYTES;
using contract::MAX_BIN_BYTES;
using contract::MAX_FRAMES;
using contract::MAX_JPEG_BYTES;
using contract::MAX_AUDIO_S;
using contract::MAX_LABELS;
using contract::MAX_LABEL_BYTES;
using contract::MAX_QUERY_BYTES;
using contract::MAX_ANSWER_BYTES;
using contract::MAX_ERROR_TEXT_BYTES;
using contract::MAX_MODEL_ID_BYTES;
using contract::MAX_DEADLINE_MS;
using contract::MAX_RETRY_AFTER_MS;
using contract::MAX_TIMING_STAGES;
using contract::MAX_BATCH_SIZE;

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
