#include "protocol.h"

#include <cmath>
#include <cstring>
#include <msgpack.hpp>
#include <set>
#include <string_view>

namespace earshot::protocol {

namespace {

const std::set<std::string> kErrorCodes = {"bad_request",       "unsupported_version", "unsupported_kind",
                                           "too_large",         "busy",                "deadline_exceeded",
                                           "unauthorized",      "internal",            "shutting_down"};
const std::set<std::string> kRequestKinds = {"infer", "ping", "stats_request"};
const std::set<std::string> kReplyKinds = {"result", "error", "pong", "stats"};

[[noreturn]] void bad(const std::string& msg) { throw ProtocolError("bad_request", msg); }
[[noreturn]] void large(const std::string& msg) { throw ProtocolError("too_large", msg); }

bool valid_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

uint64_t be(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// The bounded pre-scan (docs/protocol.md section 13): walks the msgpack
// headers without building anything, checking every length against the
// limits before trusting it, counting depth and values, refusing ext types,
// 0xc1, non-str map keys and invalid UTF-8, and requiring exactly one value.
void prescan(const uint8_t* d, size_t n) {
  struct Open { uint64_t remaining; bool is_map; };
  std::vector<Open> stack;
  size_t off = 0, objects = 0;
  bool first = true;
  auto need = [&](size_t k) { if (n - off < k) bad("truncated message"); };
  do {
    bool is_key = !stack.empty() && stack.back().is_map && stack.back().remaining % 2 == 0;
    if (!stack.empty()) --stack.back().remaining;
    if (++objects > MAX_OBJECTS) large("more than MAX_OBJECTS values");
    need(1);
    uint8_t t = d[off++];
    uint64_t len = 0;
    enum { SCALAR, STR, BIN, ARR, MAP, EXT } cls = SCALAR;
    size_t skip = 0;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {}
    else if ((t & 0xe0) == 0xa0) { cls = STR; len = t & 0x1f; }
    else if ((t & 0xf0) == 0x90) { cls = ARR; len = t & 0x0f; }
    else if ((t & 0xf0) == 0x80) { cls = MAP; len = t & 0x0f; }
    else switch (t) {
      case 0xc1: bad("reserved byte 0xc1");
      case 0xc4: case 0xc5: case 0xc6: { size_t h = size_t{1} << (t - 0xc4); need(h); len = be(d + off, h); off += h; cls = BIN; break; }
      case 0xd9: case 0xda: case 0xdb: { size_t h = size_t{1} << (t - 0xd9); need(h); len = be(d + off, h); off += h; cls = STR; break; }
      case 0xdc: case 0xdd: { size_t h = t == 0xdc ? 2 : 4; need(h); len = be(d + off, h); off += h; cls = ARR; break; }
      case 0xde: case 0xdf: { size_t h = t == 0xde ? 2 : 4; need(h); len = be(d + off, h); off += h; cls = MAP; break; }
      case 0xca: skip = 4; break;
      case 0xcb: skip = 8; break;
      case 0xcc: case 0xd0: skip = 1; break;
      case 0xcd: case 0xd1: skip = 2; break;
      case 0xce: case 0xd2: skip = 4; break;
      case 0xcf: case 0xd3: skip = 8; break;
      default: cls = EXT; break;  // c7-c9, d4-d8
    }
    if (cls == EXT) bad("msgpack ext types are not allowed");
    if (first && cls != MAP) bad("message is not a msgpack map");
    first = false;
    if (is_key && cls != STR) bad("map key is not a str");
    if (cls == STR) {
      if (len > MAX_STR_BYTES) large("str longer than MAX_STR_BYTES");
      need(len);
      if (!valid_utf8(d + off, len)) bad("invalid UTF-8 in a str");
      off += len;
    } else if (cls == BIN) {
      if (len > MAX_BIN_BYTES) large("bin longer than MAX_BIN_BYTES");
      need(len);
      off += len;
    } else if (cls == ARR || cls == MAP) {
      if (cls == ARR && len > MAX_ARRAY_LEN) large("array longer than MAX_ARRAY_LEN");
      if (cls == MAP && len > MAX_MAP_LEN) large("map longer than MAX_MAP_LEN");
      if (stack.size() + 1 > MAX_DEPTH) large("nesting deeper than MAX_DEPTH");
      stack.push_back({cls == MAP ? 2 * len : len, cls == MAP});
    } else {
      need(skip);
      off += skip;
    }
    while (!stack.empty() && stack.back().remaining == 0) stack.pop_back();
  } while (!stack.empty());
  if (off != n) bad("trailing bytes after the message");
}

void check_no_duplicates(const msgpack::object& o) {
  if (o.type == msgpack::type::MAP) {
    std::set<std::string_view> keys;
    for (uint32_t i = 0; i < o.via.map.size; ++i) {
      auto& k = o.via.map.ptr[i].key;
      if (!keys.insert(std::string_view(k.via.str.ptr, k.via.str.size)).second)
        bad("duplicate map key '" + std::string(k.via.str.ptr, k.via.str.size) + "'");
      check_no_duplicates(o.via.map.ptr[i].val);
    }
  } else if (o.type == msgpack::type::ARRAY) {
    for (uint32_t i = 0; i < o.via.array.size; ++i) check_no_duplicates(o.via.array.ptr[i]);
  }
}

const msgpack::object* field(const msgpack::object& map, std::string_view key) {
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    auto& k = map.via.map.ptr[i].key;
    if (std::string_view(k.via.str.ptr, k.via.str.size) == key) {
      auto* v = &map.via.map.ptr[i].val;
      return v->type == msgpack::type::NIL ? nullptr : v;
    }
  }
  return nullptr;
}
const msgpack::object& required(const msgpack::object& map, std::string_view key, const std::string& path) {
  auto* v = field(map, key);
  if (!v) bad(path + "." + std::string(key) + ": missing");
  return *v;
}

bool is_int(const msgpack::object& o) {
  return o.type == msgpack::type::POSITIVE_INTEGER || o.type == msgpack::type::NEGATIVE_INTEGER;
}
int64_t as_int(const msgpack::object& o, const std::string& path, int64_t lo, int64_t hi) {
  if (!is_int(o)) bad(path + ": must be an int");
  if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 > static_cast<uint64_t>(hi))
    bad(path + ": out of range");
  int64_t v = o.type == msgpack::type::POSITIVE_INTEGER ? static_cast<int64_t>(o.via.u64) : o.via.i64;
  if (v < lo || v > hi) bad(path + ": must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}
uint64_t as_uint(const msgpack::object& o, const std::string& path) {
  if (o.type != msgpack::type::POSITIVE_INTEGER) bad(path + ": must be a non-negative int");
  return o.via.u64;
}
double as_float(const msgpack::object& o, const std::string& path, double lo, double hi) {
  double v;
  if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64) v = o.via.f64;
  else if (o.type == msgpack::type::POSITIVE_INTEGER) v = static_cast<double>(o.via.u64);
  else if (o.type == msgpack::type::NEGATIVE_INTEGER) v = static_cast<double>(o.via.i64);
  else bad(path + ": must be a float");
  if (!std::isfinite(v)) bad(path + ": must be finite");
  if (v < lo || v > hi) bad(path + ": out of range");
  return v;
}
std::string as_str(const msgpack::object& o, const std::string& path, size_t min_bytes, size_t max_bytes) {
  if (o.type != msgpack::type::STR) bad(path + ": must be a str");
  if (o.via.str.size > max_bytes) large(path + ": longer than " + std::to_string(max_bytes) + " bytes");
  if (o.via.str.size < min_bytes) bad(path + ": too short");
  return std::string(o.via.str.ptr, o.via.str.size);
}
std::map<std::string, double> as_prob_map(const msgpack::object& o, const std::string& path, size_t max_entries,
                                          double hi) {
  if (o.type != msgpack::type::MAP) bad(path + ": must be a map");
  if (o.via.map.size > max_entries) large(path + ": too many entries");
  std::map<std::string, double> out;
  for (uint32_t i = 0; i < o.via.map.size; ++i) {
    auto key = as_str(o.via.map.ptr[i].key, path + " key", 1, MAX_LABEL_BYTES);
    out[key] = as_float(o.via.map.ptr[i].val, path + "['" + key + "']", 0.0, hi);
  }
  return out;
}

}  // namespace

Reply decode_reply(const uint8_t* data, size_t size) {
  try {
    if (size > MAX_MESSAGE_BYTES) large("message larger than MAX_MESSAGE_BYTES");
    if (size == 0) bad("empty message");
    prescan(data, size);
    std::size_t off = 0;
    // Second line of defence: msgpack's own limits (the prescan already holds them).
    msgpack::object_handle oh = msgpack::unpack(reinterpret_cast<const char*>(data), size, off, nullptr, nullptr,
                                                msgpack::unpack_limit(MAX_ARRAY_LEN, MAX_MAP_LEN, MAX_STR_BYTES,
                                                                      MAX_BIN_BYTES, 0, MAX_DEPTH + 1));
    if (off != size) bad("trailing bytes after the message");
    const msgpack::object& m = oh.get();
    check_no_duplicates(m);
    Reply r;
    r.wire_bytes = size;
    auto* v = field(m, "v");
    if (!v || !is_int(*v)) bad("v: missing or not an int");
    if (v->type != msgpack::type::POSITIVE_INTEGER || v->via.u64 != static_cast<uint64_t>(kVersion))
      throw ProtocolError("unsupported_version", "v: this client speaks version 1");
    auto* kind = field(m, "kind");
    if (!kind || kind->type != msgpack::type::STR) bad("kind: missing or not a str");
    r.kind = std::string(kind->via.str.ptr, kind->via.str.size);
    if (!kReplyKinds.count(r.kind)) {
      if (kRequestKinds.count(r.kind)) bad("kind: '" + r.kind + "' is not a reply");
      throw ProtocolError("unsupported_kind", "kind: unknown kind '" + r.kind + "'");
    }
    const std::string p = r.kind;
    auto* id = field(m, "id");
    if (id) r.id = as_uint(*id, p + ".id");
    else if (r.kind != "error") bad(p + ".id: missing");
    if (r.kind == "result") {
      r.model_id = as_str(required(m, "model_id", p), p + ".model_id", 1, MAX_MODEL_ID_BYTES);
      r.batch_size = as_int(required(m, "batch_size", p), p + ".batch_size", 1, MAX_BATCH_SIZE);
      auto* ans = field(m, "answer");
      if (!ans) bad(p + ".answer: missing");
      r.answer = as_str(*ans, p + ".answer", 0, MAX_ANSWER_BYTES);
      r.tags = as_prob_map(required(m, "tags", p), p + ".tags", MAX_LABELS, 1.0);
      r.timing_ms = as_prob_map(required(m, "timing_ms", p), p + ".timing_ms", MAX_TIMING_STAGES, 1e300);
      if (!r.timing_ms.count("total_ms")) bad(p + ".timing_ms: must contain total_ms");
    } else if (r.kind == "error") {
      r.code = as_str(required(m, "code", p), p + ".code", 1, 64);
      if (!kErrorCodes.count(r.code)) bad(p + ".code: unknown code '" + r.code + "'");
      auto* msg = field(m, "message");
      if (!msg) bad(p + ".message: missing");
      r.message = as_str(*msg, p + ".message", 0, MAX_ERROR_TEXT_BYTES);
      if (auto* ra = field(m, "retry_after_ms")) r.retry_after_ms = as_int(*ra, p + ".retry_after_ms", 0, MAX_RETRY_AFTER_MS);
    } else if (r.kind == "pong") {
      r.t_client_s = as_float(required(m, "t_client_s", p), p + ".t_client_s", 0.0, 1e300);
      auto& ready = required(m, "ready", p);
      if (ready.type != msgpack::type::BOOLEAN) bad(p + ".ready: must be a bool");
      r.ready = ready.via.boolean;
      if (auto* mid = field(m, "model_id")) r.model_id = as_str(*mid, p + ".model_id", 1, MAX_MODEL_ID_BYTES);
      as_uint(required(m, "queue_depth", p), p + ".queue_depth");
      as_uint(required(m, "queue_capacity", p), p + ".queue_capacity");
    } else {  // stats: the client never asks for them; check the envelope only
    }
    return r;
  } catch (const ProtocolError&) {
    throw;
  } catch (const msgpack::size_overflow& e) {
    throw ProtocolError("too_large", std::string("msgpack limit: ") + e.what());
  } catch (const msgpack::depth_size_overflow& e) {
    throw ProtocolError("too_large", std::string("msgpack depth: ") + e.what());
  } catch (const std::exception& e) {
    throw ProtocolError("bad_request", std::string("cannot decode: ") + e.what());
  }
}

namespace {
using Packer = msgpack::packer<msgpack::sbuffer>;
// Every protocol float is float64 (0xcb), even when integral. msgpack-cxx 4.x's
// pack_double() writes an integral double as an int, so the 9 bytes are written here.
struct F64 {
  msgpack::sbuffer& buf;
  void operator()(double v) const {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    char out[9];
    out[0] = static_cast<char>(0xcb);
    for (int i = 0; i < 8; ++i) out[1 + i] = static_cast<char>((bits >> (56 - 8 * i)) & 0xff);
    buf.write(out, 9);
  }
};
void key(Packer& pk, std::string_view k) { pk.pack(k); }
void envelope(Packer& pk, size_t n, std::string_view kind, uint64_t id) {
  pk.pack_map(static_cast<uint32_t>(n));
  key(pk, "v"); pk.pack(static_cast<uint64_t>(kVersion));
  key(pk, "kind"); pk.pack(kind);
  key(pk, "id"); pk.pack(id);
}
std::string finish(const msgpack::sbuffer& buf) {
  if (buf.size() > MAX_MESSAGE_BYTES) large("encoded message larger than MAX_MESSAGE_BYTES");
  return std::string(buf.data(), buf.size());
}
bool prob(double p) { return std::isfinite(p) && p >= 0.0 && p <= 1.0; }
}  // namespace

std::string encode_ping(uint64_t id, double t_client_s) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  F64 f64{buf};
  envelope(pk, 4, "ping", id);
  key(pk, "t_client_s"); f64(t_client_s);
  return finish(buf);
}

std::string encode_infer(const InferRequest& r) {
  // Field rules a sender must keep (section 6.1); the server checks them again.
  if (r.deadline_ms < 1 || r.deadline_ms > MAX_DEADLINE_MS) bad("infer.deadline_ms: out of range");
  if (r.trigger_label.empty() || r.trigger_label.size() > MAX_LABEL_BYTES) bad("infer.trigger_label: bad length");
  if (!prob(r.trigger_score) || !prob(r.student_confidence)) bad("infer: score not a probability");
  for (auto& [k, p] : r.student_scores)
    if (!prob(p) || k.empty() || k.size() > MAX_LABEL_BYTES) bad("infer.student_scores['" + k + "']: invalid");
  if (r.frames.size() > MAX_FRAMES) large("infer.frames: more than MAX_FRAMES");
  if (r.frames.empty() && !r.audio) bad("infer: needs frames or audio");
  if (r.query.has_value() != r.query_t_s.has_value()) bad("infer.query_t_s: set iff query is set");
  msgpack::sbuffer buf;
  Packer pk(buf);
  F64 f64{buf};
  envelope(pk, 13, "infer", r.id);
  key(pk, "deadline_ms"); pk.pack(r.deadline_ms);
  key(pk, "trigger_label"); pk.pack(r.trigger_label);
  key(pk, "trigger_score"); f64(r.trigger_score);
  key(pk, "student_scores");
  pk.pack_map(static_cast<uint32_t>(r.student_scores.size()));
  for (auto& [k, p] : r.student_scores) { pk.pack(k); f64(p); }  // std::map: sorted
  key(pk, "student_confidence"); f64(r.student_confidence);
  key(pk, "query");
  if (r.query) pk.pack(*r.query); else pk.pack_nil();
  key(pk, "query_t_s");
  if (r.query_t_s) f64(*r.query_t_s); else pk.pack_nil();
  key(pk, "model");
  if (r.model) pk.pack(*r.model); else pk.pack_nil();
  key(pk, "audio");
  if (r.audio) {
    pk.pack_map(3);
    key(pk, "start_s"); f64(r.audio->start_s);
    key(pk, "rate_hz"); pk.pack(r.audio->rate_hz);
    key(pk, "pcm");
    size_t nbytes = r.audio->pcm.size() * sizeof(int16_t);
    pk.pack_bin(static_cast<uint32_t>(nbytes));
    pk.pack_bin_body(reinterpret_cast<const char*>(r.audio->pcm.data()), static_cast<uint32_t>(nbytes));
  } else {
    pk.pack_nil();
  }
  key(pk, "frames");
  pk.pack_array(static_cast<uint32_t>(r.frames.size()));
  for (auto& f : r.frames) {
    if (f.jpeg.size() > MAX_JPEG_BYTES) large("infer.frames[].jpeg: larger than MAX_JPEG_BYTES");
    pk.pack_map(2);
    key(pk, "t_s"); f64(f.t_s);
    key(pk, "jpeg");
    pk.pack_bin(static_cast<uint32_t>(f.jpeg.size()));
    pk.pack_bin_body(reinterpret_cast<const char*>(f.jpeg.data()), static_cast<uint32_t>(f.jpeg.size()));
  }
  return finish(buf);
}

}  // namespace earshot::protocol
