// Leader election on a coordination.k8s.io/v1 Lease (kubernetes.h, LeaderElector), after
// client-go's tools/leaderelection: the same record, the same expiry rule on the observer's own
// clock, the same release on a clean stop. Written here because no C++ Kubernetes client is
// packaged in Debian.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/chrono.h>

#include "foresight/allocate/kubernetes.h"
#include "foresight/core/log.h"
#include "kubernetes_api.h"

namespace foresight::allocate::k8s {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// A MicroTime: RFC 3339 in UTC with microseconds, as the API server writes acquireTime/renewTime.
std::string microTime(std::chrono::system_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:06d}Z", fmt::gmtime(static_cast<std::time_t>(us / 1000000)),
                     us % 1000000);
}

std::string defaultIdentity() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::random_device rd;
  return fmt::format("{}_{:08x}{:08x}", host, rd(), rd());
}

const json kLeaseShape = json::parse(R"({"metadata": {"resourceVersion": ""},
    "spec": {"holderIdentity": "", "acquireTime": "", "renewTime": ""}})");

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string leasesPath(const std::string& ns) {
  return fmt::format("/apis/coordination.k8s.io/v1/namespaces/{}/leases", ns);
}

}  // namespace

struct LeaderElector::State {
  explicit State(ClusterAccess access) : api(std::move(access)) {}
  ApiClient api;  // used by one thread at a time: the elector's, or the caller's before start()
  // What was last read of the lease and when (this process's clock): another's lease has
  // expired once the same record has been seen unchanged for its duration.
  std::string observed_record;  // holder, renewTime and resourceVersion as read
  Clock::time_point observed_at{};
  mutable std::mutex mu;
  std::string holder;                      // the holder last seen
  std::optional<Clock::time_point> renewed;  // this one's last successful take or renewal
  bool has_led = false;
  std::condition_variable wake;
  bool stopping = false;
  std::thread thread;
};

LeaderElector::LeaderElector(ClusterAccess access, LeaseSettings settings)
    : settings_(std::move(settings)), state_(std::make_unique<State>(std::move(access))) {
  if (settings_.identity.empty()) settings_.identity = defaultIdentity();
}

LeaderElector::~LeaderElector() { stop(); }

Result<bool> LeaderElector::tryAcquireOrRenew() {
  State& st = *state_;
  const std::string base = leasesPath(settings_.ns);
  const std::string path = base + "/" + settings_.name;
  const std::string what = fmt::format("lease {}/{}", settings_.ns, settings_.name);
  const auto wall = std::chrono::system_clock::now();
  const auto now = Clock::now();
  const int duration = std::max(1, static_cast<int>(std::ceil(settings_.lease_seconds)));
  auto took = [&](const std::string& holder) {
    std::lock_guard lock(st.mu);
    st.holder = holder;
    if (holder == settings_.identity) {
      st.renewed = now;
      st.has_led = true;
    } else {
      st.renewed.reset();  // another took it
    }
    return holder == settings_.identity;
  };

  auto got = st.api.request("GET", path);
  if (!got) return tl::unexpected(got.error());
  if (got->status == 404) {
    json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", {{"name", settings_.name}, {"namespace", settings_.ns}}},
                  {"spec",
                   {{"holderIdentity", settings_.identity},
                    {"leaseDurationSeconds", duration},
                    {"acquireTime", microTime(wall)},
                    {"renewTime", microTime(wall)},
                    {"leaseTransitions", 0}}}};
    auto made = st.api.request("POST", base, lease.dump(), "application/json");
    if (!made) return tl::unexpected(made.error());
    if (made->status == 409) return false;  // another candidate created it first
    if (made->status != 201 && made->status != 200)
      return fail(ErrorCode::kIo, "{}: create returned {}: {}", what, made->status, apiMessage(*made));
    spdlog::info("leader election: {} took {} (created it)", settings_.identity, what);
    return took(settings_.identity);
  }
  if (got->status != 200)
    return fail(ErrorCode::kIo, "{}: GET returned {}: {}", what, got->status, apiMessage(*got));
  if (auto ok = checkShape(got->body, kLeaseShape); !ok)
    return fail(ok.error().code, "{}: {}", what, ok.error().message);
  json lease = got->body;
  if (!lease.contains("spec")) lease["spec"] = json::object();
  if (!lease.contains("metadata")) lease["metadata"] = json::object();
  json& spec = lease["spec"];
  const std::string holder = spec.value("holderIdentity", "");
  const json& d = spec.contains("leaseDurationSeconds") ? spec["leaseDurationSeconds"] : json();
  const double held_for = d.is_number() && d.get<double>() > 0 ? d.get<double>() : settings_.lease_seconds;
  const std::string record =
      holder + " " + spec.value("renewTime", "") + " " + lease["metadata"].value("resourceVersion", "");
  if (record != st.observed_record) {
    st.observed_record = record;
    st.observed_at = now;
  }
  if (!holder.empty() && holder != settings_.identity && seconds(now - st.observed_at) < held_for) {
    took(holder);
    return false;  // another holds it and has renewed within its duration, as seen from here
  }
  // Free, expired, or ours: take or renew it, on the resourceVersion read (a 409 if another
  // wrote in between).
  const json& t = spec.contains("leaseTransitions") ? spec["leaseTransitions"] : json();
  const std::int64_t transitions = t.is_number_integer() ? t.get<std::int64_t>() : 0;
  if (holder != settings_.identity) {  // as client-go: every change of holder is a transition
    spec["acquireTime"] = microTime(wall);
    spec["leaseTransitions"] = transitions + 1;
  }
  spec["holderIdentity"] = settings_.identity;
  spec["leaseDurationSeconds"] = duration;
  spec["renewTime"] = microTime(wall);
  auto put = st.api.request("PUT", path, lease.dump(), "application/json");
  if (!put) return tl::unexpected(put.error());
  if (put->status == 409) return false;
  if (put->status != 200)
    return fail(ErrorCode::kIo, "{}: update returned {}: {}", what, put->status, apiMessage(*put));
  if (holder != settings_.identity)
    spdlog::info("leader election: {} took {} (held by {})", settings_.identity, what,
                 holder.empty() ? std::string("no one") : holder);
  return took(settings_.identity);
}

void LeaderElector::start() {
  State& st = *state_;
  if (st.thread.joinable()) return;
  st.thread = std::thread([this, &st] {
    std::unique_lock lock(st.mu);
    while (!st.stopping) {
      lock.unlock();
      if (auto r = tryAcquireOrRenew(); !r)
        spdlog::warn("leader election: {}", r.error().message);
      lock.lock();
      st.wake.wait_for(lock, std::chrono::duration<double>(settings_.retry_seconds), [&] { return st.stopping; });
    }
  });
}

bool LeaderElector::leading() const {
  std::lock_guard lock(state_->mu);
  return state_->renewed && seconds(Clock::now() - *state_->renewed) < settings_.renew_deadline_seconds;
}

bool LeaderElector::hasLed() const {
  std::lock_guard lock(state_->mu);
  return state_->has_led;
}

std::string LeaderElector::holder() const {
  std::lock_guard lock(state_->mu);
  return state_->holder;
}

void LeaderElector::stop() {
  State& st = *state_;
  {
    std::lock_guard lock(st.mu);
    st.stopping = true;
  }
  st.wake.notify_all();
  if (st.thread.joinable()) st.thread.join();
  if (!leading()) return;
  // Released as client-go's ReleaseOnCancel does: no holder, so a standby need not wait out the
  // lease. Only if it is still ours (the resourceVersion read).
  const std::string path = leasesPath(settings_.ns) + "/" + settings_.name;
  auto got = st.api.request("GET", path);
  if (got && got->status == 200 && checkShape(got->body, kLeaseShape) &&
      got->body.value("spec", json::object()).value("holderIdentity", "") == settings_.identity) {
    json lease = got->body;
    lease["spec"]["holderIdentity"] = "";
    lease["spec"]["leaseDurationSeconds"] = 1;
    lease["spec"]["renewTime"] = microTime(std::chrono::system_clock::now());
    auto put = st.api.request("PUT", path, lease.dump(), "application/json");
    if (put && put->status == 200) {
      spdlog::info("leader election: {} released lease {}/{}", settings_.identity, settings_.ns, settings_.name);
    } else {
      spdlog::warn("leader election: releasing lease {}/{}: {}", settings_.ns, settings_.name,
                   put ? apiMessage(*put) : put.error().message);
    }
  }
  std::lock_guard lock(st.mu);
  st.renewed.reset();
}

}  // namespace foresight::allocate::k8s
