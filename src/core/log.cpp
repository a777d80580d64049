#include "foresight/core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace foresight {

void setupLogging(std::string_view level) {
  auto logger = spdlog::stderr_color_mt("foresight");
  logger->set_pattern("%^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(std::string(level)));
}

bool RepeatedLog::due(const std::string& key, const std::string& message, Clock::time_point now,
                      std::size_t& held_back) {
  auto it = said_.find(key);
  if (it != said_.end() && it->second.message == message && now - it->second.at < every_) {
    ++it->second.held_back;
    return false;
  }
  held_back = it == said_.end() ? 0 : it->second.held_back;
  said_[key] = {message, now, 0};
  return true;
}

}  // namespace foresight
