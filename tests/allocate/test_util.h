#pragma once
// Helpers shared by the allocator tests: temporary directories and fixture files.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace foresight::allocate::testing {

// A fresh directory removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "foresight-alloc-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void writeFile(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A cgroup v2 workload `w` under `root` with no limits: cpu.max, memory.max and memory.high at
// "max", 100 MiB in memory.current, an empty io.max.
inline void makeV2Fixture(const std::filesystem::path& root, const std::string& w) {
  writeFile(root / w / "cpu.max", "max 100000\n");
  writeFile(root / w / "memory.max", "max\n");
  writeFile(root / w / "memory.high", "max\n");
  writeFile(root / w / "memory.current", "104857600\n");
  writeFile(root / w / "io.max", "");
}

inline std::string readFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace foresight::allocate::testing
