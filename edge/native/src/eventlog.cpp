#include "eventlog.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace earshot {

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";  // json.dumps spelling
  if (v == 0.0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  int prec = 1;
  for (; prec <= 17; ++prec) {  // shortest digits that read back to the same double
    std::snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  // buf is "[-]d.ddde[+-]XX": split digits and exponent.
  std::string s(buf);
  bool neg = s[0] == '-';
  if (neg) s.erase(0, 1);
  auto epos = s.find('e');
  int exp = std::atoi(s.c_str() + epos + 1);
  std::string digits;
  for (size_t i = 0; i < epos; ++i)
    if (s[i] != '.') digits += s[i];
  std::string out;
  if (exp >= -4 && exp < 16) {  // repr: fixed notation for 1e-4 <= |v| < 1e16, else scientific
    if (exp < 0) {
      out = "0." + std::string(-exp - 1, '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp + 1) {
      out = digits + std::string(exp + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    out += e;
  }
  return neg ? "-" + out : out;
}

Json Json::number(double v) {
  if (std::isfinite(v) && v != 0.0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);  // round_floats: float(f"{x:.6g}")
    v = std::strtod(buf, nullptr);
  }
  return Json(python_float_repr(v));
}

Json Json::string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // ensure_ascii=False: UTF-8 as is
        }
    }
  }
  return Json(out + "\"");
}

Json Json::object(const std::vector<std::pair<std::string, Json>>& kv) {
  std::string out = "{";
  for (size_t i = 0; i < kv.size(); ++i) {
    if (i) out += ", ";
    out += string(kv[i].first).text() + ": " + kv[i].second.text();
  }
  return Json(out + "}");
}

Json Json::array(const std::vector<Json>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += items[i].text();
  }
  return Json(out + "]");
}

EventLog::EventLog(const std::string& path) {
  if (path == "-") {
    f_ = stdout;
    own_ = false;
  } else {
    f_ = std::fopen(path.c_str(), "w");
    own_ = true;
    if (!f_) throw std::runtime_error(path + ": cannot write the event log");
  }
}

EventLog::~EventLog() {
  if (own_ && f_) std::fclose(f_);
}

void EventLog::write(const std::string& kind, double t_s, double energy_mj,
                     const std::vector<std::pair<std::string, Json>>& fields) {
  std::vector<std::pair<std::string, Json>> kv = {{"v", Json::integer(1)},
                                                  {"seq", Json::integer(seq_++)},
                                                  {"t_s", Json::number(t_s)},
                                                  {"kind", Json::string(kind)},
                                                  {"energy_mj", Json::number(energy_mj)}};
  for (auto& f : fields) {  // a kind's key that repeats a common one (end's energy_mj) keeps its place
    auto it = std::find_if(kv.begin(), kv.end(), [&](auto& x) { return x.first == f.first; });
    if (it != kv.end()) it->second = f.second;
    else kv.push_back(f);
  }
  std::string line = Json::object(kv).text() + "\n";
  std::fwrite(line.data(), 1, line.size(), f_);
  std::fflush(f_);
}

}  // namespace earshot
