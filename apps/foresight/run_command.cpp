// `foresight run`: the agent (foresight/server/agent.h) until SIGINT/SIGTERM or --duration.
#include <thread>

#include "commands.h"
#include "foresight/core/log.h"
#include "foresight/server/agent.h"
#include "profiler_common.h"

namespace foresight::app {

void addRunCommand(CLI::App& app, Builtins&) {
  struct Args {
    std::string config, listen, database;
    double period = 0, duration = 0;
    std::vector<std::string> selectors;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("run", "Agent: sample, fingerprint, store history, serve /metrics and JSON");
  cmd->add_option("--config", a->config, "YAML configuration (docs/profiler.md)");
  cmd->add_option("--listen", a->listen, "host:port (overrides the config; default 127.0.0.1:9464)");
  cmd->add_option("--database", a->database, "SQLite history file (overrides the config)");
  cmd->add_option("--period", a->period, "seconds between samples (overrides the config)");
  cmd->add_option("--duration", a->duration, "stop after this many seconds (0: until a signal)");
  cmd->add_option("selectors", a->selectors, "pid:N, cgroup:/path, cmd:REGEX (default: every populated cgroup)");
  cmd->callback([a] {
    server::AgentConfig cfg;
    if (!a->config.empty()) {
      auto c = server::loadAgentConfig(a->config);
      if (!c) {
        spdlog::error("run: {}", c.error().message);
        throw CLI::RuntimeError(2);
      }
      cfg = *c;
    }
    if (!a->listen.empty()) {
      auto c = server::parseAgentConfig("listen: \"" + a->listen + "\"", "--listen");
      if (!c) {
        spdlog::error("run: {}", c.error().message);
        throw CLI::RuntimeError(2);
      }
      cfg.listen_host = c->listen_host;
      cfg.listen_port = c->listen_port;
    }
    if (!a->database.empty()) cfg.database = a->database;
    if (a->period > 0) cfg.period_seconds = a->period;
    if (!a->selectors.empty()) cfg.selectors = a->selectors;
    server::Agent agent(cfg);
    if (auto st = agent.start(); !st) {
      spdlog::error("run: {}", st.error().message);
      throw CLI::RuntimeError(1);
    }
    installStopHandler();
    const auto start = std::chrono::steady_clock::now();
    while (!stopFlag().load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (a->duration > 0 && std::chrono::steady_clock::now() - start > std::chrono::duration<double>(a->duration)) break;
    }
    agent.stop();
    spdlog::info("run: stopped after {} rounds", agent.rounds());
  });
}

}  // namespace foresight::app
