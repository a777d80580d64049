#pragma once
// A program a test starts as a server of its own (Debian's prometheus, dbus-daemon): its output
// goes to a log file, and it is stopped with SIGTERM and waited for when the object goes.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace foresight::test_support {

class ServerProcess {
 public:
  // argv[0] is looked up in PATH unless it holds a '/'.
  ServerProcess(const std::vector<std::string>& argv, const std::filesystem::path& log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      if (const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600); fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  // Its process (argv[0] once exec'd; a program that execs another, as setpriv and env do, is that one).
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

}  // namespace foresight::test_support
