// The streaming loop: a port of edge/runtime.py's EdgeRuntime (same step
// order, events, energy and cloud-merge rules; read that module's docstring).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client.h"
#include "energy.h"
#include "eventlog.h"
#include "local_answer.h"
#include "media.h"
#include "policy.h"
#include "program.h"
#include "trigger.h"

namespace earshot {

constexpr double kRingS = 8.0;  // the longest offload history (5 s) plus slack
constexpr int kTopK = 3;
constexpr double kTieEps = 1e-9;
inline const char* kNoEndpoint = "link_down";

// Where audio and frames come from: a recording replayed (fast or in real
// time), or raw PCM on stdin (audio only; the pipe sets the pace).
struct Source {
  int rate_hz = 16000;
  std::vector<int16_t> audio;    // the whole recording (empty for stdin)
  bool from_stdin = false;
  bool realtime = false;
  std::optional<Frames> frames;  // absent: audio only
  Annotations annotations;
  double duration_s() const { return double(audio.size()) / rate_hz; }
};

struct RunOptions {
  double hop_s = 0.25;
  int deadline_ms = 800;
  double link_rtt_ms = 40.0, link_mbps = 80.0;
  std::string device_name, network_name, trigger_path, student_path;
  std::optional<std::string> endpoint;
};

struct Summary {
  long long steps = 0, camera_steps = 0, frames_captured = 0, student_runs = 0, offloads = 0, results = 0,
            fallbacks = 0, bytes_sent = 0, bytes_received = 0, queries = 0, answers_local = 0, answers_cloud = 0,
            answers_correct = 0;
  double energy_mj = 0.0;
  std::vector<double> step_ms, trigger_ms, student_ms;
};

class Runtime {
 public:
  Runtime(Source& source, Program& trigger, Program* student, Policy& policy, EnergyMeter& meter, EventLog& log,
          Client* client, RunOptions opts);
  Summary run();

 private:
  struct InFlight {
    long long request_id;
    double t_sent_s;
    double wall_sent;
    uint64_t call;
    std::optional<Query> query;
  };
  struct Pending {
    long long request_id;
    std::string kind;
    std::vector<std::pair<std::string, Json>> fields;
    double t;
  };

  void step(double t, const int16_t* hop, size_t n);
  void push_audio(const int16_t* p, size_t n);
  std::vector<int16_t> last(size_t n) const;
  std::pair<std::vector<double>, std::vector<std::string>> run_trigger(double t);
  std::optional<Query> query_for(double t);
  void capture(double t);
  void run_student(double t);
  void offload(double t, const std::string& kind, const std::vector<double>& scores,
               const std::vector<std::string>& fired, const std::optional<Query>& query);
  void merge(double t, bool final_);
  bool wait_for(uint64_t call, double timeout_s);
  void resolve(double t, const InFlight& item, const Outcome& out, double latency_s);
  // A failed offload (or a cloud "unknown"): its query is answered from what the device knew at
  // t_known (the step that offloaded it; default t), not from sounds heard while waiting.
  void fallback(double t, std::optional<long long> request_id, const std::string& reason,
                const std::optional<Query>& query, std::optional<double> t_known = std::nullopt);
  void answer_local(double t, const Query& q, double t_known);
  void answer(double t, const Query& q, const std::string& text, const std::string& source, double latency_ms);
  void charge(bool camera_on);
  void emit(const std::string& kind, double t, std::vector<std::pair<std::string, Json>> fields);
  void flush(double energy_mj);
  void poll_client(int timeout_ms);

  Source& src_;
  Program& trigger_;
  Program* student_;
  Policy& policy_;
  EnergyMeter& meter_;
  EventLog& log_;
  Client* client_;
  RunOptions opts_;
  Summary summary_;
  std::vector<int16_t> ring_;
  uint64_t written_ = 0;
  double trigger_mj_ = 0, student_mj_ = 0;
  size_t trigger_n_ = 16000, student_n_ = 32000;
  int student_frame_input_ = -1;
  std::vector<Query> queries_;
  LocalMemory memory_;
  std::vector<std::tuple<std::string, double, std::vector<std::pair<std::string, Json>>>> events_;
  std::vector<InFlight> in_flight_;
  std::map<uint64_t, std::pair<Outcome, double>> outcomes_;  // call -> (outcome, wall time resolved)
  long long next_request_id_ = 1;
  TriggerHold hold_;
  std::optional<TriggerHold> early_hold_;  // the card's early stage, if it has one
  std::vector<std::string> early_;         // this step's early rising edges (Observation.trigger_early)
  bool camera_on_ = false;
  std::vector<size_t> captured_;
  std::optional<std::vector<double>> student_scores_;
  std::optional<double> student_conf_;
  double student_t_ = -kInf, last_offload_t_ = -kInf, t_ = 0.0;
  long long tx_ = 0, rx_ = 0;
  int jpeg_frames_ = 0;
  double compute_mj_ = 0.0;
  double wall_start_ = 0.0;
};

}  // namespace earshot
