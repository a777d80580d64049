// Cost the probe adds to an intercepted call: write(2) of one byte to /dev/null through libc
// directly vs. through libforesight-probe.so's write (dlopen'ed, so both run in one process).
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace {

using WriteFn = ssize_t (*)(int, const void*, size_t);

WriteFn probeWrite() {
  static WriteFn fn = [] {
    // Segment in a private folder, removed at exit by the probe's destructor.
    const std::string dir = std::filesystem::temp_directory_path() / "foresight-probe-bench";
    std::filesystem::create_directories(dir);
    ::setenv("FORESIGHT_PROBE_DIR", dir.c_str(), 1);
    void* h = ::dlopen(FORESIGHT_PROBE_LIB, RTLD_NOW | RTLD_LOCAL);
    return h ? reinterpret_cast<WriteFn>(::dlsym(h, "write")) : nullptr;
  }();
  return fn;
}

void BM_WriteDevNull_Libc(benchmark::State& state) {
  int fd = ::open("/dev/null", O_WRONLY);
  char c = 'x';
  for (auto _ : state) benchmark::DoNotOptimize(::write(fd, &c, 1));
  ::close(fd);
}
BENCHMARK(BM_WriteDevNull_Libc);

void BM_WriteDevNull_Probe(benchmark::State& state) {
  WriteFn w = probeWrite();
  if (!w) {
    state.SkipWithError("cannot dlopen the probe");
    return;
  }
  int fd = ::open("/dev/null", O_WRONLY);
  char c = 'x';
  for (auto _ : state) benchmark::DoNotOptimize(w(fd, &c, 1));
  ::close(fd);
}
BENCHMARK(BM_WriteDevNull_Probe);

// The probe's own work without the syscall: read(-1) fails in the kernel's fd lookup at once.
void BM_ReadBadFd_Libc(benchmark::State& state) {
  char c;
  for (auto _ : state) benchmark::DoNotOptimize(::read(-1, &c, 1));
}
BENCHMARK(BM_ReadBadFd_Libc);

void BM_ReadBadFd_Probe(benchmark::State& state) {
  probeWrite();
  void* h = ::dlopen(FORESIGHT_PROBE_LIB, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  auto r = h ? reinterpret_cast<ssize_t (*)(int, void*, size_t)>(::dlsym(h, "read")) : nullptr;
  if (!r) {
    state.SkipWithError("cannot dlopen the probe");
    return;
  }
  char c;
  for (auto _ : state) benchmark::DoNotOptimize(r(-1, &c, 1));
}
BENCHMARK(BM_ReadBadFd_Probe);

}  // namespace

BENCHMARK_MAIN();
