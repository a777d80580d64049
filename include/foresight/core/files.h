#pragma once
// Whole-file writes that never leave half a file behind: the text goes to a temporary file of its
// own beside the target (mkstemp), flushed to disk, then renamed over it; the replaced file's
// permissions are kept, and a symlink's target is what is replaced.

#include <filesystem>
#include <functional>
#include <ostream>
#include <string_view>

#include "foresight/core/result.h"

namespace foresight {

Status writeFileAtomically(const std::filesystem::path& path, std::string_view text);
// The same, with the content streamed by `write` (for files too large to hold as one string).
Status writeFileAtomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);

// Whether `path` can be written as a file: not a directory, in a directory that exists and is
// writable. Checked before long work (training, a replay) so a typo in an output path fails at once.
Status checkOutputFile(const std::filesystem::path& path);

}  // namespace foresight
