#include "foresight/core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace foresight {

void setupLogging(std::string_view level) {
  auto logger = spdlog::stderr_color_mt("foresight");
  logger->set_pattern("%^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(std::string(level)));
}

}  // namespace foresight
