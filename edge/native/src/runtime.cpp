#include "runtime.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <thread>

#include "queries.h"
#include "snr.h"

namespace earshot {

namespace {

double wall_s() { return monotonic_s(); }

Json top_json(const std::vector<std::pair<std::string, double>>& scores) {
  auto v = scores;
  // sorted by (-p, label), first TOP_K
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  std::vector<Json> items;
  for (size_t i = 0; i < v.size() && i < static_cast<size_t>(kTopK); ++i)
    items.push_back(Json::array({Json::string(v[i].first), Json::number(v[i].second)}));
  return Json::array(items);
}

}  // namespace

Runtime::Runtime(Source& source, Program& trigger, Program* student, Policy& policy, EnergyMeter& meter,
                 EventLog& log, Client* client, RunOptions opts)
    : src_(source), trigger_(trigger), student_(student), policy_(policy), meter_(meter), log_(log),
      client_(client), opts_(std::move(opts)),
      hold_(trigger.card().labels, trigger.card().thresholds, trigger.card().refractory_s) {
  if (!trigger.card().early_thresholds.empty())
    early_hold_.emplace(trigger.card().labels, trigger.card().early_thresholds, trigger.card().refractory_s);
  ring_.assign(static_cast<size_t>(kRingS * src_.rate_hz), 0);
  const ModelCard& tc = trigger_.card();
  trigger_n_ = static_cast<size_t>(tc.inputs.at(0).shape.back());
  trigger_mj_ = inference_mj(meter_.device(), tc.macs, tc.precision, tc.size_bytes);
  if (student_) {
    const ModelCard& sc = student_->card();
    for (size_t i = 0; i < sc.inputs.size(); ++i) {
      if (sc.inputs[i].dtype == "int16") student_n_ = static_cast<size_t>(sc.inputs[i].shape.back());
      if (sc.inputs[i].dtype == "uint8") student_frame_input_ = static_cast<int>(i);
    }
    student_mj_ = inference_mj(meter_.device(), sc.macs, sc.precision, sc.size_bytes);
    if (student_frame_input_ >= 0 && src_.frames) {
      auto& shape = sc.inputs[student_frame_input_].shape;  // [1, H, W, 3]
      if (shape.size() != 4 || shape[1] != src_.frames->height || shape[2] != src_.frames->width)
        throw std::runtime_error(student_->path() + ": reads " + std::to_string(shape.size() == 4 ? shape[1] : 0) + "x" +
                                 std::to_string(shape.size() == 4 ? shape[2] : 0) + " frames, the camera gives " +
                                 std::to_string(src_.frames->height) + "x" + std::to_string(src_.frames->width));
    }
  }
  queries_ = src_.annotations.queries;
}

// --- audio ring ------------------------------------------------------------------------------

void Runtime::push_audio(const int16_t* p, size_t n) {
  size_t cap = ring_.size();
  for (size_t i = (n > cap ? n - cap : 0); i < n; ++i) ring_[(written_ + i) % cap] = p[i];
  written_ += n;
}

std::vector<int16_t> Runtime::last(size_t n) const {
  std::vector<int16_t> out(n, 0);
  size_t cap = ring_.size();
  size_t have = static_cast<size_t>(std::min<uint64_t>(n, written_));
  for (size_t k = 0; k < have; ++k) out[n - have + k] = ring_[(written_ - have + k) % cap];
  return out;
}

// --- the run -------------------------------------------------------------------------------------

Summary Runtime::run() {
  policy_.reset();
  if (client_) {
    // Wait (up to the deadline, at least 1 s) for the first round trip, so step 1 sees a settled link.
    double until = wall_s() + std::max(opts_.deadline_ms, 1000) / 1000.0;
    while (wall_s() < until && !client_->rtt_ms()) client_->poll(10);
  }
  std::vector<std::pair<std::string, Json>> params;
  for (auto& [k, v] : policy_.params())  // int fields of the Python dataclasses print as ints
    params.emplace_back(k, k == "max_pending" ? Json::integer(static_cast<long long>(v)) : Json::number(v));
  emit("start", 0.0,
       {{"recording_id", Json::string(src_.annotations.recording_id)},
        {"policy", Json::string(policy_.name())},
        {"policy_params", Json::object(params)},
        {"device", Json::string(opts_.device_name)},
        {"network", Json::string(opts_.network_name)},
        {"trigger_program", Json::string(opts_.trigger_path)},
        {"student_program", student_ ? Json::string(opts_.student_path) : Json::null()},
        {"endpoint", Json::optional_string(opts_.endpoint)},
        {"hop_s", Json::number(opts_.hop_s)}});
  flush(0.0);
  wall_start_ = wall_s();
  size_t hop_n = static_cast<size_t>(std::llround(opts_.hop_s * src_.rate_hz));
  if (src_.from_stdin) {
    std::vector<int16_t> buf(hop_n);
    for (long long i = 0;; ++i) {
      size_t got = std::fread(buf.data(), sizeof(int16_t), hop_n, stdin);
      if (got < hop_n) break;  // EOF: a partial hop is not a step (as step_times drops it)
      double t = std::round((i + 1) * opts_.hop_s * 1e9) / 1e9;
      auto t0 = std::chrono::steady_clock::now();
      step(t, buf.data(), got);
      summary_.step_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  } else {
    long long n = static_cast<long long>(std::floor(src_.duration_s() / opts_.hop_s + 1e-9));
    size_t pos = 0;
    for (long long i = 0; i < n; ++i) {
      double t = std::round((i + 1) * opts_.hop_s * 1e9) / 1e9;
      if (src_.realtime) {  // release the hop when the wall clock reaches it, as a microphone would
        double delay = wall_start_ + t - wall_s();
        while (delay > 0) {
          poll_client(static_cast<int>(std::ceil(std::min(delay, 0.1) * 1000)));
          delay = wall_start_ + t - wall_s();
        }
      }
      size_t stop = std::min(static_cast<size_t>(std::llround(t * src_.rate_hz)), src_.audio.size());
      size_t from = std::min(pos, stop);
      auto t0 = std::chrono::steady_clock::now();
      step(t, src_.audio.data() + from, stop - from);
      summary_.step_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      pos = std::max(pos, stop);
    }
  }
  // Drain: wait for what is still in flight (each resolves by its deadline); queries past
  // the last full step are answered on the device.
  merge(t_, true);
  while (!queries_.empty()) {
    Query q = queries_.front();
    queries_.erase(queries_.begin());
    summary_.queries += 1;
    answer_local(t_, q, t_);
  }
  flush(meter_.total_mj());
  summary_.energy_mj = meter_.total_mj();
  log_.write("end", t_, summary_.energy_mj,
             {{"steps", Json::integer(summary_.steps)},
              {"energy_mj", Json::number(summary_.energy_mj)},
              {"offloads", Json::integer(summary_.offloads)},
              {"frames_captured", Json::integer(summary_.frames_captured)},
              {"bytes_sent", Json::integer(summary_.bytes_sent)},
              {"queries", Json::integer(summary_.queries)},
              {"answers_correct", Json::integer(summary_.answers_correct)}});
  return summary_;
}

void Runtime::step(double t, const int16_t* hop, size_t n) {
  t_ = t;
  push_audio(hop, n);
  auto [scores, fired] = run_trigger(t);
  merge(t, false);
  auto query = query_for(t);
  Observation obs;
  obs.t_s = t;
  obs.trigger_fired = fired;
  obs.trigger_early = early_;
  obs.student_confidence = student_conf_;
  obs.student_age_s = t - student_t_;
  auto snr_pcm = last(trigger_n_);
  obs.snr_db = estimate_snr_db(snr_pcm.data(), snr_pcm.size(), src_.rate_hz);
  obs.battery_frac = meter_.battery_frac();
  obs.link_up = client_ && client_->connected();
  obs.link_rtt_ms = opts_.link_rtt_ms;
  obs.link_mbps = opts_.link_mbps;
  obs.since_offload_s = t - last_offload_t_;
  obs.pending = static_cast<int>(in_flight_.size());
  obs.has_query = query.has_value();
  obs.camera_on = camera_on_;
  Action action = policy_.act(obs);
  if (action.camera != camera_on_) emit("camera", t, {{"on", Json::boolean(action.camera)}});
  camera_on_ = action.camera;
  if (action.camera) capture(t);
  if (action.student && student_) run_student(t);
  // The request names the trigger's held labels, else this step's early ones (edge/runtime.py _request).
  if (action.offload != "none") offload(t, action.offload, scores, fired.empty() ? early_ : fired, query);
  else if (query) answer_local(t, *query, t);
  charge(action.camera);
}

std::pair<std::vector<double>, std::vector<std::string>> Runtime::run_trigger(double t) {
  auto pcm = last(trigger_n_);
  auto t0 = std::chrono::steady_clock::now();
  auto outs = trigger_.run({pcm.data()});
  summary_.trigger_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  compute_mj_ += trigger_mj_;
  const ModelCard& card = trigger_.card();
  std::vector<double> scores(outs.at(0).begin(), outs.at(0).end());
  // The card's thresholds and refractory hold (trigger.h): held labels go to the policy,
  // newly held ones are trigger events.
  std::vector<std::string> fired, now;
  hold_.step(t, scores, fired, now);
  for (auto& lab : now) {
    size_t i = std::find(card.labels.begin(), card.labels.end(), lab) - card.labels.begin();
    emit("trigger", t, {{"label", Json::string(lab)}, {"score", Json::number(scores[i])}});
    memory_.add(t, lab, scores[i]);
  }
  // The early stage (card early_thresholds): its rising edges on labels the trigger does not hold yet.
  early_.clear();
  if (early_hold_) {
    std::vector<std::string> early_held, early_now;
    early_hold_->step(t, scores, early_held, early_now);
    for (auto& lab : early_now) {
      if (std::find(fired.begin(), fired.end(), lab) != fired.end()) continue;
      size_t i = std::find(card.labels.begin(), card.labels.end(), lab) - card.labels.begin();
      emit("early", t, {{"label", Json::string(lab)}, {"score", Json::number(scores[i])}});
      early_.push_back(lab);
    }
  }
  return {scores, fired};
}

std::optional<Query> Runtime::query_for(double t) {
  if (!queries_.empty() && queries_.front().t_s <= t + kTieEps) {
    summary_.queries += 1;
    Query q = queries_.front();
    queries_.erase(queries_.begin());
    return q;
  }
  return std::nullopt;
}

void Runtime::capture(double t) {
  summary_.camera_steps += 1;
  if (!src_.frames) return;
  auto& times = src_.frames->times_s;
  // Frames of (t - hop, t] exist only while the camera is on.
  size_t lo = std::lower_bound(times.begin(), times.end(), t - opts_.hop_s + kTieEps) - times.begin();
  size_t hi = std::upper_bound(times.begin(), times.end(), t + kTieEps) - times.begin();
  for (size_t i = lo; i < hi; ++i)
    if (captured_.empty() || i > captured_.back()) {
      captured_.push_back(i);
      summary_.frames_captured += 1;
    }
}

void Runtime::run_student(double t) {
  if (captured_.empty()) return;  // nothing seen yet
  // The camera frame as captured: the program resizes it inside its graph (shared/frames.py);
  // the constructor checked that its size is the one the card's input reads.
  const uint8_t* frame = src_.frames->frame(captured_.back());
  auto pcm = last(student_n_);
  const ModelCard& card = student_->card();
  std::vector<const void*> inputs;
  for (auto& spec : card.inputs) inputs.push_back(spec.dtype == "uint8" ? static_cast<const void*>(frame)
                                                                          : static_cast<const void*>(pcm.data()));
  auto t0 = std::chrono::steady_clock::now();
  auto outs = student_->run(inputs);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::vector<double> probs(outs.at(0).begin(), outs.at(0).end());
  double conf = outs.size() > 1 ? outs[1].at(0) : *std::max_element(probs.begin(), probs.end());
  std::vector<std::pair<std::string, double>> named;
  for (size_t i = 0; i < card.labels.size() && i < probs.size(); ++i) {
    named.emplace_back(card.labels[i], probs[i]);
    if (card.thresholds[i] < 1.0 && probs[i] >= card.thresholds[i]) memory_.add(t, card.labels[i], probs[i]);
  }
  student_scores_ = probs;
  student_conf_ = conf;
  student_t_ = t;
  compute_mj_ += student_mj_;
  summary_.student_runs += 1;
  summary_.student_ms.push_back(ms);
  emit("local_inference", t, {{"top", top_json(named)}, {"confidence", Json::number(conf)}, {"latency_ms", Json::number(ms)}});
}

void Runtime::offload(double t, const std::string& kind, const std::vector<double>& scores,
                      const std::vector<std::string>& fired, const std::optional<Query>& query) {
  const OffloadSpec& spec = offload_spec(kind);
  long long request_id = next_request_id_++;
  protocol::InferRequest req;
  req.deadline_ms = opts_.deadline_ms;
  // Frames: up to spec.frames of the captured ones in the last audio_s, spread evenly, newest last.
  int n_frames = 0;
  if (spec.frames && src_.frames) {
    const Frames& f = *src_.frames;
    std::vector<size_t> window;
    for (size_t i : captured_)
      if (f.times_s[i] > t - spec.audio_s + kTieEps) window.push_back(i);
    if (!window.empty()) {
      size_t m = std::min<size_t>(spec.frames, window.size());
      std::vector<long> picks;
      for (size_t k = 0; k < m; ++k) {  // np.round(np.linspace(len-1, 0, m)), then unique + sorted
        double x = m == 1 ? double(window.size() - 1)
                          : double(window.size() - 1) + (0.0 - double(window.size() - 1)) * double(k) / double(m - 1);
        picks.push_back(static_cast<long>(std::nearbyint(x)));
      }
      std::sort(picks.begin(), picks.end());
      picks.erase(std::unique(picks.begin(), picks.end()), picks.end());
      for (long k : picks) {
        size_t i = window[static_cast<size_t>(k)];
        req.frames.push_back({f.times_s[i], encode_jpeg(f.frame(i), f.height, f.width, spec.jpeg_quality)});
      }
      n_frames = static_cast<int>(req.frames.size());
    }
  }
  size_t n = static_cast<size_t>(std::min<uint64_t>(std::llround(spec.audio_s * src_.rate_hz), written_));
  if (n) req.audio = protocol::AudioWindow{std::max(0.0, t - double(n) / src_.rate_hz), src_.rate_hz, last(n)};
  const ModelCard& tc = trigger_.card();
  if (!fired.empty()) {
    size_t best = 0;
    double best_p = -1;
    for (auto& lab : fired) {
      size_t i = std::find(tc.labels.begin(), tc.labels.end(), lab) - tc.labels.begin();
      if (scores[i] > best_p) { best_p = scores[i]; best = i; }
    }
    req.trigger_label = tc.labels[best];
    req.trigger_score = scores[best];
  } else {
    req.trigger_label = query ? "query" : "policy:" + policy_.name();
    req.trigger_score = scores.empty() ? 0.0 : *std::max_element(scores.begin(), scores.end());
  }
  if (student_scores_ && student_) {
    auto& labels = student_->card().labels;
    for (size_t i = 0; i < labels.size(); ++i) req.student_scores[labels[i]] = (*student_scores_)[i];
  }
  req.student_confidence = student_conf_.value_or(0.0);
  if (query) {
    req.query = query->text;
    req.query_t_s = query->t_s;
  }
  if (!req.audio && req.frames.empty())  // nothing at all to send yet: an empty second of silence
    req.audio = protocol::AudioWindow{0.0, src_.rate_hz, std::vector<int16_t>(src_.rate_hz, 0)};
  std::string encoded;
  try {
    encoded = protocol::encode_infer(req);
  } catch (const protocol::ProtocolError& e) {
    encoded.clear();
  }
  long long n_bytes = static_cast<long long>(encoded.size());
  emit("offload", t,
       {{"request_id", Json::integer(request_id)},
        {"offload", Json::string(kind)},
        {"frames", Json::integer(n_frames)},
        {"jpeg_quality", Json::integer(spec.jpeg_quality)},
        {"audio_s", Json::number(spec.audio_s)},
        {"bytes", Json::integer(n_bytes)},
        {"query_id", query ? Json::string(query->id) : Json::null()}});
  summary_.offloads += 1;
  last_offload_t_ = t;
  jpeg_frames_ += n_frames;  // encoded whatever happens next
  if (!client_) {
    fallback(t, request_id, kNoEndpoint, query);
    return;
  }
  double wall_sent = wall_s();
  uint64_t call = client_->submit(req, opts_.deadline_ms);
  for (auto& o : client_->take_outcomes()) outcomes_[o.call] = {o, wall_s()};
  auto it = outcomes_.find(call);
  if (it != outcomes_.end() && !it->second.first.ok) {
    std::string code = it->second.first.code;
    outcomes_.erase(it);
    fallback(t, request_id, code, query);  // refused locally: nothing was sent
    return;
  }
  tx_ += n_bytes;
  summary_.bytes_sent += n_bytes;
  in_flight_.push_back({request_id, t, wall_sent, call, query});
}

void Runtime::poll_client(int timeout_ms) {
  if (!client_) {
    if (timeout_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
    return;
  }
  client_->poll(timeout_ms);
  for (auto& o : client_->take_outcomes()) outcomes_[o.call] = {o, wall_s()};
}

bool Runtime::wait_for(uint64_t call, double timeout_s) {
  double until = wall_s() + timeout_s;
  while (!outcomes_.count(call)) {
    double left = until - wall_s();
    if (left <= 0) break;
    poll_client(std::max(1, static_cast<int>(std::ceil(std::min(left, 0.05) * 1000))));
  }
  return outcomes_.count(call) > 0;
}

void Runtime::merge(double t, bool final_) {
  if (!client_) return;
  poll_client(0);
  bool realtime = src_.realtime || src_.from_stdin;
  std::vector<InFlight> keep;
  for (auto& item : in_flight_) {
    double budget_s = t - item.t_sent_s;
    if (!outcomes_.count(item.call) && (final_ || !realtime)) {
      double wait_s = final_ ? 1e9 : budget_s - (wall_s() - item.wall_sent);
      if (wait_s > 0) wait_for(item.call, std::min(wait_s, opts_.deadline_ms / 1000.0 + 5.0));
    }
    auto it = outcomes_.find(item.call);
    if (it == outcomes_.end()) {
      keep.push_back(item);
      continue;
    }
    double latency_s = it->second.second - item.wall_sent;
    if (!(final_ || realtime) && latency_s > budget_s + 1e-3) {
      keep.push_back(item);  // resolved, but on the virtual clock it arrives after this step
      continue;
    }
    Outcome out = it->second.first;
    outcomes_.erase(it);
    resolve(t, item, out, latency_s);
  }
  in_flight_ = std::move(keep);
}

void Runtime::resolve(double t, const InFlight& item, const Outcome& out, double latency_s) {
  if (!out.ok) {
    fallback(t, item.request_id, out.code, item.query, item.t_sent_s);  // what it knew when it asked
    return;
  }
  const protocol::Reply& r = out.result;
  long long n = static_cast<long long>(r.wire_bytes);
  rx_ += n;
  summary_.bytes_received += n;
  summary_.results += 1;
  double latency_ms = 1000 * latency_s;
  std::vector<std::pair<std::string, double>> tags(r.tags.begin(), r.tags.end());
  // Latency stages (docs/edge.md): the server's own figures and the rest of the round trip;
  // this loop does not time its trigger/build/send/show sub-steps yet (null).
  auto stage = [&r](const char* key) {
    auto s = r.timing_ms.find(key);
    return s == r.timing_ms.end() ? Json::null() : Json::number(s->second);
  };
  double server_ms = r.timing_ms.count("total_ms") ? r.timing_ms.at("total_ms") : 0.0;
  Json stages = Json::object({{"trigger_ms", Json::null()}, {"build_ms", Json::null()}, {"send_ms", Json::null()},
                              {"network_ms", Json::number(std::max(0.0, latency_ms - server_ms))},
                              {"server_ms", Json::number(server_ms)}, {"server_queue_ms", stage("queue_ms")},
                              {"server_model_ms", stage("worker_ms")}, {"shown_ms", Json::null()}});
  emit("result", t,
       {{"request_id", Json::integer(item.request_id)},
        {"latency_ms", Json::number(latency_ms)},
        {"answer", Json::string(r.answer)},
        {"top", top_json(tags)},
        {"model_id", Json::string(r.model_id)},
        {"stages_ms", stages}});
  if (!item.query) return;
  if (is_unknown(r.answer)) {  // the cloud could not say: the device's answer from when it asked (edge/runtime.py)
    fallback(t, item.request_id, "cloud_unknown", item.query, item.t_sent_s);
    return;
  }
  answer(t, *item.query, r.answer, "cloud", 1000 * (item.t_sent_s - item.query->t_s) + latency_ms);
}

void Runtime::fallback(double t, std::optional<long long> request_id, const std::string& reason,
                       const std::optional<Query>& query, std::optional<double> t_known) {
  summary_.fallbacks += 1;
  emit("fallback", t,
       {{"request_id", request_id ? Json::integer(*request_id) : Json::null()},
        {"reason", Json::string(reason)},
        {"query_id", query ? Json::string(query->id) : Json::null()}});
  if (query) answer_local(t, *query, t_known.value_or(t));
}

void Runtime::answer_local(double t, const Query& q, double t_known) {
  auto t0 = std::chrono::steady_clock::now();
  std::string text = answer_locally(memory_, q.text, t_known);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  answer(t, q, text, "local", 1000 * (t - q.t_s) + ms);
}

void Runtime::answer(double t, const Query& q, const std::string& text, const std::string& source, double latency_ms) {
  std::optional<bool> correct = answer_matches(text, q.answer);  // the contract's scoring rule (queries.h)
  (source == "cloud" ? summary_.answers_cloud : summary_.answers_local) += 1;
  summary_.answers_correct += correct.value_or(false) ? 1 : 0;
  emit("answer", t,
       {{"query_id", Json::string(q.id)},
        {"text", Json::string(q.text)},
        {"answer", Json::string(text)},
        {"source", Json::string(source)},
        {"latency_ms", Json::number(std::max(0.0, latency_ms))},
        {"correct", correct ? Json::boolean(*correct) : Json::null()}});
}

void Runtime::charge(bool camera_on) {
  meter_.step(opts_.hop_s, camera_on, compute_mj_, jpeg_frames_, tx_, rx_);
  summary_.steps += 1;
  tx_ = rx_ = 0;
  jpeg_frames_ = 0;
  compute_mj_ = 0.0;
  flush(meter_.total_mj());
}

void Runtime::emit(const std::string& kind, double t, std::vector<std::pair<std::string, Json>> fields) {
  events_.emplace_back(kind, t, std::move(fields));
}

void Runtime::flush(double energy_mj) {
  for (auto& [kind, t, fields] : events_) log_.write(kind, t, energy_mj, fields);
  events_.clear();
}

}  // namespace earshot
