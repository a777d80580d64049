#pragma once
// Logging is spdlog's default logger, on stderr so that stdout stays for results (tables, JSON).

#include <spdlog/spdlog.h>

#include <string_view>

namespace foresight {

// level: trace, debug, info, warn, error, off. Unknown levels fall back to info.
void setupLogging(std::string_view level);

}  // namespace foresight
