// What `foresight guests` reads each round, on real QEMU guests (TCG; tests/support/qemu_guest.h:
// a libvirtd of the bench's own in session mode): every running guest's statistics
// (LibvirtConnection::runningGuests), and one guest's (guest()), with 8 guests idle after boot.
// libvirtd and QEMU answer over local sockets here; a remote -c adds a round trip to every call.
// Booting the guests takes a minute or two before the figures. Reports an error where this host
// cannot boot guests (scripts/deps.sh test installs what they need).
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "foresight/allocate/libvirt.h"
#include "foresight/core/log.h"
#include "support/qemu_guest.h"

namespace {

constexpr int kGuests = 8;

// A connection to the daemon of the guests, booted once for every benchmark; nullptr (and the
// benchmark skipped with why) where they cannot run.
std::unique_ptr<foresight::allocate::LibvirtConnection> connectToGuests(benchmark::State& state) {
  spdlog::set_level(spdlog::level::warn);
  static foresight::test_support::QemuLibvirt* host = nullptr;
  static const std::string why = [] {
    host = new foresight::test_support::QemuLibvirt;  // destroyed at exit: it stops the guests
    std::atexit([] { delete host; });
    if (!host->unavailable.empty()) return host->unavailable;
    for (int i = 0; i < kGuests; ++i)
      if (auto e = host->boot(fmt::format("bench-{}", i), 1, 2, 160, ""); !e.empty()) return e;
    for (int i = 0; i < kGuests; ++i)
      if (!host->waitForConsole(fmt::format("bench-{}", i), "foresight-guest: up", 600))
        return fmt::format("guest bench-{} did not come up", i);
    // Their init still settles after "up" (the balloon driver's first statistics); reads then
    // wait on busy QEMU monitors, which is boot, not steady state.
    std::this_thread::sleep_for(std::chrono::seconds(30));
    return std::string();
  }();
  if (!why.empty()) {
    state.SkipWithError(why.c_str());
    return nullptr;
  }
  return std::make_unique<foresight::allocate::LibvirtConnection>(host->uri);
}

void BM_RunningGuests(benchmark::State& state) {
  auto conn = connectToGuests(state);
  if (!conn) return;
  std::size_t read = 0, by_calls = 0;
  for (auto _ : state) {
    auto r = conn->runningGuests();
    if (!r) {
      state.SkipWithError(r.error().message.c_str());
      return;
    }
    read = r->guests.size();
    by_calls = r->read_by_calls;
  }
  state.counters["guests"] = static_cast<double>(read);
  state.counters["read_by_calls"] = static_cast<double>(by_calls);
}
BENCHMARK(BM_RunningGuests)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_OneGuest(benchmark::State& state) {
  auto conn = connectToGuests(state);
  if (!conn) return;
  for (auto _ : state)
    if (auto g = conn->guest("bench-0"); !g) {
      state.SkipWithError(g.error().message.c_str());
      return;
    }
}
BENCHMARK(BM_OneGuest)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
