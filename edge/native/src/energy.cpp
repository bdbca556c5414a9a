#include "energy.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <stdexcept>

namespace earshot {

namespace {

std::string profile_path(const std::string& kind, const std::string& s, const std::string& configs_dir) {
  bool bare = s.find('/') == std::string::npos && !(s.size() > 5 && (s.substr(s.size() - 5) == ".yaml")) &&
              !(s.size() > 4 && s.substr(s.size() - 4) == ".yml");
  std::string path = bare ? configs_dir + "/" + kind + "/" + s + ".yaml" : s;
  if (!std::ifstream(path)) throw std::runtime_error(kind + " profile '" + s + "': file not found (" + path + ")");
  return path;
}

struct Loader {
  std::string path;
  YAML::Node root;
  double get(const std::string& key, const std::string& unit) {
    auto q = root[key];
    if (!q) throw std::runtime_error(path + ": " + key + ": missing");
    if (!q.IsMap() || !q["value"] || !q["unit"]) throw std::runtime_error(path + ": " + key + ": expected {value, unit, source}");
    if (q["unit"].as<std::string>() != unit)
      throw std::runtime_error(path + ": " + key + ".unit: expected '" + unit + "'");
    double v = q["value"].as<double>();
    if (!std::isfinite(v)) throw std::runtime_error(path + ": " + key + ".value: not finite");
    return v;
  }
};

Loader open(const std::string& kind, const std::string& s, const std::string& dir) {
  Loader l;
  l.path = profile_path(kind, s, dir);
  try {
    l.root = YAML::LoadFile(l.path);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(l.path + ": not valid YAML: " + e.what());
  }
  return l;
}

std::string stem(const std::string& path) {
  auto slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return base.substr(0, base.rfind('.'));
}

}  // namespace

DeviceProfile load_device_profile(const std::string& s, const std::string& dir) {
  Loader l = open("device", s, dir);
  try {
    DeviceProfile d;
    d.name = l.root["name"] ? l.root["name"].as<std::string>() : stem(l.path);
    d.battery_wh = l.get("battery_wh", "Wh");
    d.baseline_mw = l.get("baseline_mw", "mW");
    d.audio_dsp_mw = l.get("audio_dsp_mw", "mW");
    d.camera_mw = l.get("camera_mw", "mW");
    d.camera_wake_mj = l.get("camera_wake_mj", "mJ");
    d.jpeg_mj_per_frame = l.get("jpeg_mj_per_frame", "mJ");
    d.npu_pj_per_mac = l.get("npu_pj_per_mac", "pJ/MAC");
    d.cpu_pj_per_mac = l.get("cpu_pj_per_mac", "pJ/MAC");
    d.dram_pj_per_byte = l.get("dram_pj_per_byte", "pJ/byte");
    d.sustained_power_mw = l.get("sustained_power_mw", "mW");
    d.thermal_window_s = l.get("thermal_window_s", "s");
    return d;
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(l.path + ": " + e.what());
  }
}

NetworkProfile load_network_profile(const std::string& s, const std::string& dir) {
  Loader l = open("network", s, dir);
  try {
    NetworkProfile n;
    n.name = l.root["name"] ? l.root["name"].as<std::string>() : stem(l.path);
    n.uplink_mbps = l.get("uplink_mbps", "Mbit/s");
    n.uplink_cv = l.get("uplink_cv", "ratio");
    n.downlink_mbps = l.get("downlink_mbps", "Mbit/s");
    n.rtt_ms = l.get("rtt_ms", "ms");
    n.rtt_jitter_ms = l.get("rtt_jitter_ms", "ms");
    n.loss_rate = l.get("loss_rate", "ratio");
    n.tx_nj_per_bit = l.get("tx_nj_per_bit", "nJ/bit");
    n.rx_nj_per_bit = l.get("rx_nj_per_bit", "nJ/bit");
    n.tail_ms = l.get("tail_ms", "ms");
    n.tail_mw = l.get("tail_mw", "mW");
    n.active_mw = l.get("active_mw", "mW");
    return n;
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(l.path + ": " + e.what());
  }
}

double inference_mj(const DeviceProfile& d, long long macs, const std::string& precision, long long weight_bytes) {
  if (precision != "int8" && precision != "fp32")
    throw std::runtime_error("precision: expected 'int8' or 'fp32', got '" + precision + "'");
  double pj = precision == "int8" ? d.npu_pj_per_mac : d.cpu_pj_per_mac;
  return (double(macs) * pj + double(weight_bytes) * d.dram_pj_per_byte) * 1e-9;
}

double EnergyMeter::battery_frac() const { return std::max(0.0, 1.0 - total_mj_ / dev_.battery_mj()); }

double EnergyMeter::step(double hop_s, bool camera_on, double compute_mj, int jpeg_frames, long long tx_bytes,
                         long long rx_bytes) {
  double camera = 0.0;
  if (camera_on) camera = dev_.camera_mw * hop_s + (camera_on_ ? 0.0 : dev_.camera_wake_mj);
  camera_on_ = camera_on;
  // Per-transfer tail (shared/profiles.py): the transfer starts the step, the tail follows its airtime.
  double radio = 0.0, in_tail;
  if (tx_bytes || rx_bytes) {
    double air = net_.airtime_s(tx_bytes, rx_bytes);
    radio = (double(tx_bytes) * 8 * net_.tx_nj_per_bit + double(rx_bytes) * 8 * net_.rx_nj_per_bit) * 1e-6 +
            net_.active_mw * air;
    in_tail = std::min(net_.tail_ms / 1000.0, std::max(0.0, hop_s - air));
    tail_left_s_ = net_.tail_ms / 1000.0 - in_tail;
  } else {
    in_tail = std::min(hop_s, tail_left_s_);
    tail_left_s_ -= in_tail;
  }
  double tail = net_.tail_mw * in_tail;
  // Same summation order as StepEnergy.total.
  double total = dev_.baseline_mw * hop_s + dev_.audio_dsp_mw * hop_s + camera + compute_mj +
                 jpeg_frames * dev_.jpeg_mj_per_frame + radio + tail;
  total_mj_ += total;
  elapsed_s_ += hop_s;
  double alpha = 1.0 - std::exp(-hop_s / dev_.thermal_window_s);
  avg_power_mw_ += alpha * (total / hop_s - avg_power_mw_);
  return total;
}

}  // namespace earshot
