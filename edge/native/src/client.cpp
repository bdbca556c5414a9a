#include "client.h"

#include <zmq.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <thread>
#include <cstring>

namespace earshot {

double monotonic_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

namespace {

// A zmq certificate file (zmq.auth / czmq "ZPL" format): `public-key = "<z85>"`
// and, in a `.key_secret` file, `secret-key = "<z85>"`.
std::pair<std::string, std::string> load_certificate(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot read CurveZMQ key file");
  std::string line, pub, sec;
  std::regex re(R"re(^\s*(public|secret)-key\s*=\s*"(.{40})")re");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, re)) (m[1] == "public" ? pub : sec) = m[2];
  }
  if (pub.empty()) throw std::runtime_error(path + ": holds no public-key");
  return {pub, sec};
}

}  // namespace

Client::Client(ClientOptions opts) : opts_(std::move(opts)), ctx_(1) {
  if (opts_.max_in_flight < 1) throw std::runtime_error("max_in_flight must be >= 1");
  if (!opts_.server_public_key.empty() || !opts_.client_keys.empty()) {
    if (opts_.server_public_key.empty() || opts_.client_keys.empty())
      throw std::runtime_error("CurveZMQ needs both --server-key and --client-key");
    std::ifstream probe(opts_.server_public_key);
    curve_server_ = (opts_.server_public_key.size() == 40 && !probe) ? opts_.server_public_key
                                                                      : load_certificate(opts_.server_public_key).first;
    auto [pub, sec] = load_certificate(opts_.client_keys);
    if (sec.empty()) throw std::runtime_error(opts_.client_keys + ": holds no secret key (give the .key_secret file)");
    curve_public_ = pub;
    curve_secret_ = sec;
  }
  open();
}

Client::~Client() {
  for (auto& [id, call] : calls_) (void)call;
  close_socket();
}

void Client::open() {
  sock_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
  // docs/protocol.md section 2, client column.
  sock_->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::MAX_MESSAGE_BYTES));
  sock_->set(zmq::sockopt::linger, 0);
  sock_->set(zmq::sockopt::immediate, 1);
  sock_->set(zmq::sockopt::sndhwm, 64);
  sock_->set(zmq::sockopt::rcvhwm, 64);
  sock_->set(zmq::sockopt::reconnect_ivl, kReopenBackoffInitialMs);
  sock_->set(zmq::sockopt::reconnect_ivl_max, kReopenBackoffMaxMs);
  sock_->set(zmq::sockopt::heartbeat_ivl, 1000);
  sock_->set(zmq::sockopt::heartbeat_timeout, 3000);
  if (!curve_server_.empty()) {
    sock_->set(zmq::sockopt::curve_serverkey, curve_server_);
    sock_->set(zmq::sockopt::curve_publickey, curve_public_);
    sock_->set(zmq::sockopt::curve_secretkey, curve_secret_);
  }
  std::string mon = "inproc://earshot-edge-monitor-" + std::to_string(++monitor_seq_);
  if (zmq_socket_monitor(sock_->handle(), mon.c_str(),
                         ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0)
    throw std::runtime_error("zmq_socket_monitor failed");
  monitor_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::pair);
  monitor_->set(zmq::sockopt::linger, 0);
  monitor_->connect(mon);
  sock_->connect(opts_.endpoint);
}

void Client::close_socket() {
  if (!sock_) return;
  zmq_socket_monitor(sock_->handle(), nullptr, 0);
  monitor_->close();
  sock_->close();  // linger 0: whatever is queued is dropped; those ids are abandoned
  sock_.reset();
  monitor_.reset();
  connected_ = false;
}

void Client::reset(const std::string& reason, double now) {
  count("resets");
  std::fprintf(stderr, "earshot-edge: connection to %s reset (%s); reopening in %.1f s\n", opts_.endpoint.c_str(),
               reason.c_str(), backoff_s_);
  close_socket();
  reopen_at_ = now + backoff_s_;
  backoff_s_ = std::min(2 * backoff_s_, kReopenBackoffMaxMs / 1000.0);
  silent_timeouts_ = 0;
  std::vector<uint64_t> lost;
  for (auto& [wire, call_id] : by_wire_id_) lost.push_back(call_id);
  by_wire_id_.clear();
  std::sort(lost.begin(), lost.end(), [&](uint64_t a, uint64_t b) { return calls_[a].t_sent < calls_[b].t_sent; });
  for (uint64_t id : lost) {
    auto it = calls_.find(id);
    if (it == calls_.end()) continue;
    Call& call = it->second;
    call.wire_id.reset();
    double left_ms = 1000 * (call.deadline - now);
    if (!call.is_ping && call.sends < kMaxSends && left_ms >= kMinRetryBudgetMs) {
      count("retries");
      unsent_.push_back(id);
    } else {
      resolve(id, false, {}, "unavailable", "connection lost (" + reason + ") with the request on it");
    }
  }
}

void Client::on_monitor() {
  while (monitor_) {
    zmq::message_t ev, addr;
    if (!monitor_->recv(ev, zmq::recv_flags::dontwait)) return;
    if (ev.more()) (void)monitor_->recv(addr, zmq::recv_flags::dontwait);
    if (ev.size() < 6) continue;
    uint16_t event;
    std::memcpy(&event, ev.data(), 2);
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      connected_ = true;
      backoff_s_ = kReopenBackoffInitialMs / 1000.0;
      count("connects");
      send_ping(monotonic_s());
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
      if (connected_) {
        reset("server disconnected", monotonic_s());
        return;  // the monitor socket is gone
      }
    } else {
      count("handshake_failures");
      std::fprintf(stderr, "earshot-edge: handshake with %s failed: wrong keys, or this client is not allowed\n",
                   opts_.endpoint.c_str());
    }
  }
}

void Client::send_ping(double now) {
  Call call{next_call_id_++, true, {}, now, now + 1.0};
  calls_[call.call_id] = call;
  unsent_.push_front(call.call_id);
}

uint64_t Client::submit(const protocol::InferRequest& req, int deadline_ms) {
  double now = monotonic_s();
  uint64_t id = next_call_id_++;
  count("submitted");
  size_t infers = 0;
  for (auto& [cid, c] : calls_) infers += c.is_ping ? 0 : 1;
  Call call{id, false, req, now, now + std::clamp(deadline_ms, 1, int(protocol::MAX_DEADLINE_MS)) / 1000.0};
  if (now < quiet_until_) {
    calls_[id] = call;
    resolve(id, false, {}, "busy", "server asked to back off; not sent");
  } else if (infers >= static_cast<size_t>(opts_.max_in_flight)) {
    calls_[id] = call;
    resolve(id, false, {}, "too_many_in_flight", std::to_string(opts_.max_in_flight) + " calls already in flight");
  } else {
    calls_[id] = call;
    unsent_.push_back(id);
    flush(now);
  }
  return id;
}

void Client::flush(double now) {
  while (!unsent_.empty() && connected_ && sock_) {
    uint64_t id = unsent_.front();
    auto it = calls_.find(id);
    if (it == calls_.end()) { unsent_.pop_front(); continue; }
    Call& call = it->second;
    uint64_t wire = next_wire_id_++;
    now = monotonic_s();  // the budget is what is left as this message leaves (a burst takes time)
    std::string data;
    try {
      if (call.is_ping) {
        data = protocol::encode_ping(wire, now);
      } else {
        protocol::InferRequest r = call.request;
        r.id = wire;
        // The server's clock starts one way after we send, and its verdict needs one way back:
        // give it what is left minus a round trip and the margin, or it lands after our timer.
        double reserve_ms = rtt_ms_.value_or(0.0) + kVerdictMarginMs;
        r.deadline_ms = static_cast<int64_t>(
            std::min<double>(protocol::MAX_DEADLINE_MS, std::max(1.0, 1000 * (call.deadline - now) - reserve_ms)));
        data = protocol::encode_infer(r);
      }
    } catch (const protocol::ProtocolError& e) {
      unsent_.pop_front();
      resolve(id, false, {}, e.code, e.what());
      continue;
    }
    auto sent = sock_->send(zmq::buffer(data.data(), data.size()), zmq::send_flags::dontwait);
    if (!sent) return;  // high-water mark or not connected: retry on the next poll
    unsent_.pop_front();
    call.sends += 1;
    call.wire_id = wire;
    call.t_sent = now;
    by_wire_id_[wire] = id;
    count(call.is_ping ? "pings_sent" : "sent");
  }
}

void Client::receive() {
  while (sock_) {
    zmq::message_t msg;
    if (!sock_->recv(msg, zmq::recv_flags::dontwait)) return;
    bool multi = msg.more();
    while (msg.more()) {  // drain the rest of a multi-frame reply
      zmq::message_t rest;
      if (!sock_->recv(rest, zmq::recv_flags::dontwait)) break;
      msg.move(rest);
    }
    if (multi) { count("malformed_replies"); continue; }
    protocol::Reply reply;
    try {
      reply = protocol::decode_reply(static_cast<const uint8_t*>(msg.data()), msg.size());
    } catch (const protocol::ProtocolError& e) {
      count("malformed_replies");
      continue;
    }
    silent_timeouts_ = 0;
    last_heard_ = monotonic_s();
    auto it = reply.id ? by_wire_id_.find(*reply.id) : by_wire_id_.end();
    if (it == by_wire_id_.end()) {
      // A reply to an id that already timed out (or an error without an id).
      count(reply.id ? "late_replies" : "unmatched_replies");
      continue;
    }
    uint64_t call_id = it->second;
    by_wire_id_.erase(it);
    Call& call = calls_[call_id];
    if (reply.kind == "error") {
      if ((reply.code == "busy" || reply.code == "shutting_down") && reply.retry_after_ms)
        quiet_until_ = std::max(quiet_until_, monotonic_s() + *reply.retry_after_ms / 1000.0);
      resolve(call_id, false, {}, reply.code, reply.message);
    } else if (reply.kind != (call.is_ping ? "pong" : "result")) {
      count("malformed_replies");
      resolve(call_id, false, {}, "bad_request", "server answered with " + reply.kind);
    } else {
      if (call.is_ping) {
        double rtt = 1000 * std::max(0.0, monotonic_s() - reply.t_client_s);
        rtt_ms_ = rtt_ms_ ? (1 - kRttEwma) * *rtt_ms_ + kRttEwma * rtt : rtt;
      }
      resolve(call_id, true, std::move(reply), "", "");
    }
  }
}

void Client::expire(double now) {
  std::vector<uint64_t> due;
  for (auto& [id, call] : calls_)
    if (call.deadline <= now) due.push_back(id);
  for (uint64_t id : due) {
    Call& call = calls_[id];
    if (call.wire_id) {
      by_wire_id_.erase(*call.wire_id);  // a reply after this is late
      if (last_heard_ < call.t_sent) ++silent_timeouts_;
      resolve(id, false, {}, "deadline_exceeded", "no reply within the deadline");
    } else if (connected_) {
      resolve(id, false, {}, "deadline_exceeded", "deadline passed before it could be sent");
    } else {
      resolve(id, false, {}, "unavailable", "not connected to " + opts_.endpoint + " during the whole budget");
    }
  }
  if (silent_timeouts_ >= kSilentTimeoutsBeforeReset && sock_)
    reset(std::to_string(silent_timeouts_) + " requests in a row got no reply", now);
}

void Client::resolve(uint64_t call_id, bool ok, protocol::Reply result, const std::string& code,
                     const std::string& msg) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;  // resolved already: exactly once
  Call call = std::move(it->second);
  calls_.erase(it);
  unsent_.erase(std::remove(unsent_.begin(), unsent_.end(), call_id), unsent_.end());
  if (call.is_ping) { count(ok ? "pongs" : "ping_failures"); return; }
  count(ok ? "results" : "errors." + code);
  Outcome out;
  out.call = call_id;
  out.ok = ok;
  out.result = std::move(result);
  out.code = code;
  out.message = msg;
  out.latency_ms = 1000 * (monotonic_s() - call.t_submit);
  done_.push_back(std::move(out));
}

int Client::next_timer_ms() const {
  double now = monotonic_s(), wake = -1;
  for (auto& [id, call] : calls_) wake = wake < 0 ? call.deadline : std::min(wake, call.deadline);
  if (!sock_) wake = wake < 0 ? reopen_at_ : std::min(wake, reopen_at_);
  if (wake < 0) return -1;
  return std::max(0, static_cast<int>(std::ceil(1000 * (wake - now))));
}

void Client::poll(int timeout_ms) {
  double t_end = monotonic_s() + timeout_ms / 1000.0;
  while (true) {
    double now = monotonic_s();
    if (!sock_ && now >= reopen_at_) open();
    if (monitor_) on_monitor();
    flush(now);
    receive();
    expire(monotonic_s());
    now = monotonic_s();
    if (now >= t_end) return;
    int wait = static_cast<int>(std::ceil(1000 * (t_end - now)));
    int timer = next_timer_ms();
    if (timer >= 0) wait = std::min(wait, std::max(timer, 1));
    wait = std::min(wait, 100);
    if (sock_) {
      zmq::pollitem_t items[] = {{sock_->handle(), 0, ZMQ_POLLIN, 0}, {monitor_->handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, std::chrono::milliseconds(wait));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(wait));
    }
  }
}

size_t Client::in_flight() const {
  size_t n = 0;
  for (auto& [id, c] : calls_) n += c.is_ping ? 0 : 1;
  return n;
}

std::vector<Outcome> Client::take_outcomes() {
  std::vector<Outcome> out;
  out.swap(done_);
  return out;
}

}  // namespace earshot
