#pragma once
// Runs a command line as a user would type it, for the tests that drive the `foresight` binary.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace foresight::test_support {

struct Ran {
  int exit_code;    // -1 when killed by a signal
  std::string out;  // stdout
  std::string err;  // stderr
  std::string all() const { return out + err; }
};

// `command` through /bin/sh; stdout and stderr are kept apart (stderr via a temporary file, so a
// long log cannot fill a pipe and block the child).
inline Ran runShell(const std::string& command) {
  static std::atomic<int> n{0};
  const std::filesystem::path err =
      std::filesystem::temp_directory_path() /
      ("foresight-test-stderr-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".txt");
  Ran r{-1, {}, {}};
  FILE* p = ::popen(("exec 2>'" + err.string() + "'; " + command).c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  while (std::size_t k = std::fread(buf, 1, sizeof buf, p)) r.out.append(buf, k);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream ss;
  ss << std::ifstream(err).rdbuf();
  r.err = ss.str();
  std::filesystem::remove(err);
  return r;
}

// The port of the first "http://127.0.0.1:PORT" a command has written to its log so far (its
// endpoint's start line, with --listen 127.0.0.1:0); 0 while there is none.
inline int loggedPort(const std::filesystem::path& log) {
  std::stringstream ss;
  ss << std::ifstream(log).rdbuf();
  const std::string text = ss.str();
  const std::string prefix = "http://127.0.0.1:";
  const auto at = text.find(prefix);
  return at == std::string::npos ? 0 : std::atoi(text.c_str() + at + prefix.size());
}

}  // namespace foresight::test_support
