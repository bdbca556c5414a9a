// The JSONL event log, schema v1 (edge/eventlog.py, docs/edge.md): one object
// per line, common keys {"v", "seq", "t_s", "kind", "energy_mj"} then the
// kind's keys in order. Floats are rounded to 6 significant digits and
// printed as Python's json.dumps prints them, so lines diff cleanly against
// the Python runtime's. Each line is flushed when written.
#pragma once
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace earshot {

// A JSON value built by hand (the log needs only these shapes).
class Json {
 public:
  static Json null() { return Json("null"); }
  static Json boolean(bool b) { return Json(b ? "true" : "false"); }
  static Json integer(long long v) { return Json(std::to_string(v)); }
  static Json number(double v);  // 6 significant digits, Python float repr
  static Json string(const std::string& s);
  static Json object(const std::vector<std::pair<std::string, Json>>& kv);
  static Json array(const std::vector<Json>& items);
  template <typename T>
  static Json optional_string(const std::optional<T>& s) { return s ? string(*s) : null(); }
  const std::string& text() const { return text_; }

 private:
  explicit Json(std::string t) : text_(std::move(t)) {}
  std::string text_;
};

// Python's repr() of a double (shortest round-trip digits; "1.0", "1e-05").
std::string python_float_repr(double v);

class EventLog {
 public:
  explicit EventLog(const std::string& path);  // "-" writes to stdout
  ~EventLog();
  void write(const std::string& kind, double t_s, double energy_mj,
             const std::vector<std::pair<std::string, Json>>& fields);

 private:
  FILE* f_;
  bool own_;
  long long seq_ = 0;
};

}  // namespace earshot
