// Device/network profiles and the energy meter: a port of shared/profiles.py
// (EnergyMeter.step and inference_mj, same arithmetic and field names; see
// that module's docstring for the model). Profiles are the same YAML files:
// every field is {value, unit, source}; the unit is checked like the Python loader.
#pragma once
#include <string>

namespace earshot {

struct DeviceProfile {
  std::string name;
  double battery_wh, baseline_mw, audio_dsp_mw, camera_mw, camera_wake_mj, jpeg_mj_per_frame, npu_pj_per_mac,
      cpu_pj_per_mac, dram_pj_per_byte, sustained_power_mw, thermal_window_s;
  double battery_mj() const { return battery_wh * 3600.0 * 1000.0; }
};
struct NetworkProfile {
  std::string name;
  double uplink_mbps, uplink_cv, downlink_mbps, rtt_ms, rtt_jitter_ms, loss_rate, tx_nj_per_bit, rx_nj_per_bit,
      tail_ms, tail_mw, active_mw;
  // Seconds the radio sends and receives at the mean rates (NetworkProfile.airtime_s).
  double airtime_s(long long tx_bytes, long long rx_bytes) const {
    return double(tx_bytes) * 8 / (uplink_mbps * 1e6) + double(rx_bytes) * 8 / (downlink_mbps * 1e6);
  }
};

// `name_or_path`: a bare name is looked up as <configs_dir>/<kind>/<name>.yaml.
// Throws std::runtime_error naming the file and field.
DeviceProfile load_device_profile(const std::string& name_or_path, const std::string& configs_dir);
NetworkProfile load_network_profile(const std::string& name_or_path, const std::string& configs_dir);

// Energy (mJ) of one program call: MACs at the precision's cost plus one read of the weights.
double inference_mj(const DeviceProfile& d, long long macs, const std::string& precision, long long weight_bytes);

class EnergyMeter {
 public:
  EnergyMeter(DeviceProfile d, NetworkProfile n) : dev_(std::move(d)), net_(std::move(n)) {}
  // Charges one step; returns its energy (mJ).
  double step(double hop_s, bool camera_on, double compute_mj, int jpeg_frames, long long tx_bytes,
              long long rx_bytes);
  double total_mj() const { return total_mj_; }
  double battery_frac() const;
  double mean_power_mw() const { return elapsed_s_ > 0 ? total_mj_ / elapsed_s_ : 0.0; }
  const DeviceProfile& device() const { return dev_; }
  const NetworkProfile& network() const { return net_; }

 private:
  DeviceProfile dev_;
  NetworkProfile net_;
  double total_mj_ = 0, elapsed_s_ = 0, avg_power_mw_ = 0, tail_left_s_ = 0;
  bool camera_on_ = false;
};

}  // namespace earshot
