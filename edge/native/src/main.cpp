// earshot-edge: the deployable edge runtime. Usage: earshot-edge --help.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "client.h"
#include "energy.h"
#include "eventlog.h"
#include "local_answer.h"
#include "media.h"
#include "policy.h"
#include "program.h"
#include "protocol.h"
#include "runtime.h"

using namespace earshot;

static const char* kUsage = R"(earshot-edge: run the trigger, AV student and offload policy over a recording.

  earshot-edge --recording DIR --trigger T.pte [--student S.pte] [options]
  cat pcm.s16le | earshot-edge --stdin-pcm --trigger T.pte [options]

Source:
  --recording DIR        audio.wav + annotations.json (queries) + frames.u8 (see --frames)
  --frames FILE          raw frame file (default DIR/frames.u8; write it with
                         python edge/native/decode_frames.py DIR)
  --no-video             replay audio only (the camera captures nothing)
  --stdin-pcm            mono int16 little-endian PCM on stdin (audio only, no queries)
  --rate HZ              sample rate of --stdin-pcm (default 16000)
  --realtime             release each hop at its wall time (default: as fast as possible)
Programs and policy:
  --trigger PTE          trigger program (its card PTE.json beside it); a card with early_thresholds
                         has an early stage: audio_trigger sends the audio in hand on its rising edges
  --student PTE          AV student program (optional)
  --policy NAME          audio_trigger (default) | confidence_threshold | context_aware | periodic
  --param KEY=VALUE      policy parameter (repeatable), e.g. hold_s=3.0 (audio_trigger: hold_s, delay_s, sustain_s)
  --hop-s S              step length (default 0.25)
  --threads N            1: run the programs on the calling thread only (default: ExecuTorch's pool)
Cloud:
  --endpoint EP          e.g. tcp://127.0.0.1:5555 (none: every offload falls back with link_down)
  --server-key KEY       server public key (z85 or .key file): turns CurveZMQ on
  --client-key FILE      this client's .key_secret file
  --deadline-ms MS       budget of each offload (default 800)
  --max-in-flight N      unresolved offloads at most (default 4)
Accounting and output:
  --device NAME|PATH     device profile (default glasses_2025, from --configs/device/)
  --network NAME|PATH    network profile (default wifi)
  --configs DIR          configs folder (default: the repo's configs/ next to this binary)
  --log FILE             JSONL event log (default events.jsonl; - for stdout)
  --summary-json FILE    totals and per-step timings (ms) as JSON
Exit status: 0 after a full run (cloud failures are fallbacks, not errors); 2 on bad
arguments or unreadable inputs.

Test helpers: earshot-edge protocol-check (hex payloads on stdin, one per line ->
"ok <kind> <id>" or "error <code>"), earshot-edge encode-examples, earshot-edge
query-check (JSON questions on stdin, one per line -> how the device reads and answers them).
)";

static std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) { out += d[c >> 4]; out += d[c & 15]; }
  return out;
}

static int protocol_check() {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<uint8_t> b;
    for (size_t i = 0; i + 1 < line.size(); i += 2) b.push_back(static_cast<uint8_t>(std::stoi(line.substr(i, 2), nullptr, 16)));
    try {
      auto r = protocol::decode_reply(b.data(), b.size());
      std::cout << "ok " << r.kind << " " << (r.id ? std::to_string(*r.id) : "nil") << "\n";
    } catch (const protocol::ProtocolError& e) {
      std::cout << "error " << e.code << "\n";
    }
  }
  return 0;
}

static int encode_examples() {
  // docs/protocol.md sections 10.1 and 10.3.
  std::cout << "ping " << hex(protocol::encode_ping(1, 12.5)) << "\n";
  protocol::InferRequest r;
  r.id = 2;
  r.deadline_ms = 800;
  r.trigger_label = "timer_beep";
  r.trigger_score = 0.875;
  r.student_scores = {{"door_open", 0.25}, {"timer_beep", 0.875}};
  r.student_confidence = 0.5;
  r.query = "what was that?";
  r.query_t_s = 41.0;
  r.audio = protocol::AudioWindow{40.0, 16000, {0, 1000, -1000, 32767}};
  // The 141-byte 8x8 mid-grey baseline JPEG of section 10.3 (shared/jpeg_header.py EXAMPLE_JPEG):
  // SOI, DQT of ones, SOF0 8x8 one component, one-code DC and AC tables, SOS, one byte of scan, EOI.
  std::vector<uint8_t> jpeg = {0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43, 0x00};
  jpeg.insert(jpeg.end(), 64, 0x01);
  for (uint8_t b : {0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11, 0x00}) jpeg.push_back(b);
  for (uint8_t table_class : {0x00, 0x10}) {
    for (uint8_t b : {0xff, 0xc4, 0x00, 0x14}) jpeg.push_back(b);
    jpeg.push_back(table_class);
    jpeg.push_back(0x01);          // one code of length 1 ...
    jpeg.insert(jpeg.end(), 15, 0x00);
    jpeg.push_back(0x00);          // ... for symbol 0 (DC: difference 0; AC: end of block)
  }
  for (uint8_t b : {0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0x3f, 0xff, 0xd9}) jpeg.push_back(b);
  r.frames = {{40.5, jpeg}, {40.625, jpeg}};
  std::cout << "infer " << hex(protocol::encode_infer(r)) << "\n";
  return 0;
}

// One JSON object per line in: {"text", "t_s", "memory": [[t_s, label, score], ...], "gold"}.
// One per line out: the question's kind and answer type, the labels it names, the device's
// answer from that memory and whether it matches gold (null without one), and the text after
// Python's lower() and strip(); {"error": ...} for a line that is not such an object.
static int query_check() {
  std::string line;
  while (std::getline(std::cin, line)) {
    nlohmann::json out;
    try {
      auto in = nlohmann::json::parse(line);
      std::string text = in.at("text").get<std::string>();
      LocalMemory memory;
      for (auto& d : in.value("memory", nlohmann::json::array()))
        memory.add(d.at(0).get<double>(), d.at(1).get<std::string>(), d.at(2).get<double>());
      std::optional<std::string> gold;
      if (in.contains("gold") && in["gold"].is_string()) gold = in["gold"].get<std::string>();
      QueryKind kind = query_kind(text);
      std::string answer = answer_locally(memory, text, in.at("t_s").get<double>());
      auto correct = answer_matches(answer, gold);
      out = {{"kind", kind_name(kind)},
             {"answer_type", answer_type_name(answer_type(kind))},
             {"labels", labels_named(text)},
             {"answer", answer},
             {"correct", correct ? nlohmann::json(*correct) : nlohmann::json(nullptr)},
             {"lower", python_lower(text)},
             {"strip", python_strip(text)}};
    } catch (const nlohmann::json::exception& e) {
      out = {{"error", e.what()}};
    }
    std::cout << out.dump() << "\n";
  }
  return 0;
}

static std::string exe_dir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

static bool exists(const std::string& p) { return std::ifstream(p).good(); }

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "protocol-check") return protocol_check();
  if (argc > 1 && std::string(argv[1]) == "encode-examples") return encode_examples();
  if (argc > 1 && std::string(argv[1]) == "query-check") return query_check();
  std::map<std::string, std::string> opt;
  std::map<std::string, double> params;
  std::vector<std::string> flags = {"--realtime", "--stdin-pcm", "--no-video", "--help"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (std::find(flags.begin(), flags.end(), a) != flags.end()) { opt[a] = "1"; continue; }
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) {
      std::fprintf(stderr, "earshot-edge: bad argument '%s' (see --help)\n", a.c_str());
      return 2;
    }
    std::string v = argv[++i];
    if (a == "--param") {
      auto eq = v.find('=');
      if (eq == std::string::npos) { std::fprintf(stderr, "earshot-edge: --param needs KEY=VALUE\n"); return 2; }
      try { params[v.substr(0, eq)] = std::stod(v.substr(eq + 1)); }
      catch (...) { std::fprintf(stderr, "earshot-edge: --param %s: not a number\n", v.c_str()); return 2; }
    } else {
      opt[a] = v;
    }
  }
  if (opt.count("--help") || argc == 1) { std::fputs(kUsage, stdout); return argc == 1 ? 2 : 0; }
  auto get = [&](const std::string& k, const std::string& d) { return opt.count(k) ? opt[k] : d; };
  try {
    if (!opt.count("--trigger")) throw std::runtime_error("--trigger is required");
    if (opt.count("--recording") == opt.count("--stdin-pcm"))
      throw std::runtime_error("give exactly one of --recording DIR and --stdin-pcm");
    if (get("--threads", "0") == "1") use_single_thread();

    Source src;
    src.realtime = opt.count("--realtime") > 0;
    if (opt.count("--recording")) {
      std::string dir = opt["--recording"];
      Wav wav = read_wav(dir + "/audio.wav");
      src.rate_hz = wav.rate_hz;
      src.audio = std::move(wav.pcm);
      src.annotations = read_annotations(dir + "/annotations.json");
      if (!opt.count("--no-video")) {
        std::string frames = get("--frames", dir + "/frames.u8");
        if (!exists(frames))
          throw std::runtime_error(frames + ": no frame file; write it with `python edge/native/decode_frames.py " +
                                   dir + "` (or pass --no-video)");
        src.frames = read_frames(frames);
      }
    } else {
      src.from_stdin = true;
      src.rate_hz = std::stoi(get("--rate", "16000"));
      src.annotations.recording_id = "stdin";
    }

    Program trigger(opt["--trigger"]);
    std::unique_ptr<Program> student;
    if (opt.count("--student")) student = std::make_unique<Program>(opt["--student"]);
    auto policy = make_policy(get("--policy", "audio_trigger"), params);

    std::string configs = get("--configs", "");
    if (configs.empty()) {
      const char* env = std::getenv("EARSHOT_CONFIGS");
      configs = env ? env : exe_dir() + "/../../../configs";
    }
    EnergyMeter meter(load_device_profile(get("--device", "glasses_2025"), configs),
                      load_network_profile(get("--network", "wifi"), configs));

    std::unique_ptr<Client> client;
    RunOptions ro;
    ro.hop_s = std::stod(get("--hop-s", "0.25"));
    if (!(ro.hop_s > 0)) throw std::runtime_error("--hop-s must be > 0");
    ro.deadline_ms = std::stoi(get("--deadline-ms", "800"));
    if (ro.deadline_ms < 1 || ro.deadline_ms > protocol::MAX_DEADLINE_MS)
      throw std::runtime_error("--deadline-ms must be in [1, 60000]");
    ro.link_rtt_ms = meter.network().rtt_ms;
    ro.link_mbps = meter.network().uplink_mbps;
    ro.device_name = meter.device().name;
    ro.network_name = meter.network().name;
    ro.trigger_path = opt["--trigger"];
    ro.student_path = get("--student", "");
    if (opt.count("--endpoint")) {
      ro.endpoint = opt["--endpoint"];
      ClientOptions co;
      co.endpoint = opt["--endpoint"];
      co.server_public_key = get("--server-key", "");
      co.client_keys = get("--client-key", "");
      co.max_in_flight = std::stoi(get("--max-in-flight", "4"));
      client = std::make_unique<Client>(co);
    }

    EventLog log(get("--log", "events.jsonl"));
    Runtime rt(src, trigger, student.get(), *policy, meter, log, client.get(), ro);
    Summary s = rt.run();

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    std::fprintf(stderr,
                 "earshot-edge: %lld steps, %lld offloads (%lld results, %lld fallbacks), %lld/%lld answers correct, "
                 "%.1f mJ, peak RSS %.1f MB\n",
                 s.steps, s.offloads, s.results, s.fallbacks, s.answers_correct, s.queries, s.energy_mj,
                 ru.ru_maxrss / 1024.0);
    if (client) {
      std::fprintf(stderr, "earshot-edge: client counters:");
      for (auto& [k, v] : client->counters()) std::fprintf(stderr, " %s=%llu", k.c_str(), static_cast<unsigned long long>(v));
      std::fprintf(stderr, "\n");
    }
    if (opt.count("--summary-json")) {
      std::ofstream out(opt["--summary-json"]);
      auto arr = [](const std::vector<double>& v) {
        std::vector<Json> items;
        for (double x : v) items.push_back(Json::number(x));
        return Json::array(items);
      };
      std::vector<std::pair<std::string, Json>> counters;
      if (client)
        for (auto& [k, v] : client->counters()) counters.emplace_back(k, Json::integer(static_cast<long long>(v)));
      out << Json::object({{"steps", Json::integer(s.steps)},
                           {"offloads", Json::integer(s.offloads)},
                           {"results", Json::integer(s.results)},
                           {"fallbacks", Json::integer(s.fallbacks)},
                           {"queries", Json::integer(s.queries)},
                           {"answers_correct", Json::integer(s.answers_correct)},
                           {"energy_mj", Json::number(s.energy_mj)},
                           {"peak_rss_kb", Json::integer(ru.ru_maxrss)},
                           {"client_counters", Json::object(counters)},
                           {"step_ms", arr(s.step_ms)},
                           {"trigger_ms", arr(s.trigger_ms)},
                           {"student_ms", arr(s.student_ms)}})
                 .text()
          << "\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "earshot-edge: %s\n", e.what());
    return 2;
  }
  return 0;
}
