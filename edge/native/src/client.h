// Offload client: a DEALER connection to `earshot serve` speaking protocol v1.
//
// A single-threaded port of edge/client.py's guarantees, driven by the
// runtime's loop through poll(): bounded in-flight calls, a client-side timer
// per call (the full budget) while the server gets the remaining budget minus
// half the smoothed ping RTT, each call resolved exactly once (late replies
// are counted and dropped), Lazy Pirate reconnect (close with linger 0 and
// reopen after a 100 ms -> 5 s backoff when the server disconnects or several
// calls in a row time out with no reply at all; calls caught on a lost
// connection are re-sent under new ids if their budget allows), and a `busy`
// retry_after_ms hint honoured. Malformed replies never throw: they are
// counted (counters["malformed_replies"]) and dropped.
#pragma once
#include <zmq.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol.h"

namespace earshot {

// Named timeouts and limits, as in edge/client.py.
constexpr int kDefaultDeadlineMs = 800;
constexpr int kMinRetryBudgetMs = 50;
constexpr int kMaxSends = 2;
constexpr int kSilentTimeoutsBeforeReset = 3;
constexpr int kReopenBackoffInitialMs = 100;
constexpr int kReopenBackoffMaxMs = 5000;
constexpr double kRttEwma = 0.25;
// The server's budget ends this long (ms) before our own timer, besides a round trip, so its
// verdict can travel back in time (docs/protocol.md, "Deadline"; the Python client's VERDICT_MARGIN_MS).
constexpr int kVerdictMarginMs = 10;

struct ClientOptions {
  std::string endpoint;
  std::string server_public_key;  // z85 (40 chars) or a `.key` file; empty: no CurveZMQ
  std::string client_keys;        // a `.key_secret` file (zmq cert format)
  int max_in_flight = 4;
};

// How a call ended. `ok`: `result` holds the server's result; else `code` is a
// server error code or a client one (deadline_exceeded, unavailable,
// too_many_in_flight, busy, closed) and `message` says more.
struct Outcome {
  uint64_t call = 0;
  bool ok = false;
  protocol::Reply result;
  std::string code, message;
  double latency_ms = 0.0;  // submit -> resolution, monotonic clock
};

class Client {
 public:
  explicit Client(ClientOptions opts);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Queues `req` (its id and deadline_ms are the client's to set). Returns the
  // call id; a call refused at once (too_many_in_flight, busy back-off,
  // too_large) resolves immediately and shows up in take_outcomes().
  uint64_t submit(const protocol::InferRequest& req, int deadline_ms);
  // Does socket I/O and fires timers for up to `timeout_ms` (0: no waiting).
  void poll(int timeout_ms);
  // Calls resolved since the last take, in resolution order.
  std::vector<Outcome> take_outcomes();
  size_t in_flight() const;  // infer calls not resolved yet
  bool connected() const { return connected_; }
  std::optional<double> rtt_ms() const { return rtt_ms_; }
  const std::map<std::string, uint64_t>& counters() const { return counters_; }
  // Milliseconds until the next timer (a call's deadline or a reopen), -1 if none.
  int next_timer_ms() const;

 private:
  struct Call {
    uint64_t call_id;
    bool is_ping;
    protocol::InferRequest request;
    double t_submit, deadline;  // monotonic seconds
    int sends = 0;
    std::optional<uint64_t> wire_id;
    double t_sent = 0.0;
  };
  void open();
  void close_socket();
  void reset(const std::string& reason, double now);
  void on_monitor();
  void flush(double now);
  void receive();
  void expire(double now);
  void resolve(uint64_t call_id, bool ok, protocol::Reply result, const std::string& code, const std::string& msg);
  void count(const std::string& k, uint64_t n = 1) { counters_[k] += n; }
  void send_ping(double now);

  ClientOptions opts_;
  std::string curve_server_, curve_public_, curve_secret_;
  zmq::context_t ctx_;
  std::unique_ptr<zmq::socket_t> sock_, monitor_;
  int monitor_seq_ = 0;
  bool connected_ = false;
  double reopen_at_ = 0.0, backoff_s_ = kReopenBackoffInitialMs / 1000.0;
  int silent_timeouts_ = 0;
  double last_heard_ = 0.0, quiet_until_ = 0.0;
  uint64_t next_wire_id_ = 1, next_call_id_ = 1;
  std::map<uint64_t, Call> calls_;           // unresolved, by call id
  std::map<uint64_t, uint64_t> by_wire_id_;  // wire id -> call id
  std::deque<uint64_t> unsent_;
  std::vector<Outcome> done_;
  std::optional<double> rtt_ms_;
  std::map<std::string, uint64_t> counters_;
};

double monotonic_s();

}  // namespace earshot
