#pragma once
// Whole-file writes that never leave half a file behind: the text goes to a temporary file beside
// the target, which is renamed over it only once complete.

#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>

#include "foresight/core/result.h"

namespace foresight {

Status writeFileAtomically(const std::filesystem::path& path, std::string_view text);
// The same, with the content streamed by `write` (for files too large to hold as one string).
Status writeFileAtomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);

}  // namespace foresight
