#pragma once
// Whole-file writes that never leave half a file behind: the text goes to a temporary file of its
// own beside the target (mkstemp), flushed to disk, then renamed over it; the replaced file's
// permissions are kept, and a symlink's target is what is replaced.

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <ostream>
#include <string_view>

#include "foresight/core/result.h"

namespace foresight {

// A file written in full or not at all, for output streamed over a long run (a recording): the
// content goes to a temporary file of its own beside the target (mkstemp; never a fixed
// "FILE.tmp" that two runs would share or another user could plant), commit() puts it in place as
// writeFileAtomically does, and an uncommitted one is removed when destroyed. Holds one
// descriptor (the stream's) unless paused.
class AtomicFile {
 public:
  static Result<AtomicFile> create(const std::filesystem::path& path);
  AtomicFile(AtomicFile&&) noexcept;
  AtomicFile& operator=(AtomicFile&&) noexcept;
  ~AtomicFile();
  // Writes to a paused file fail (the stream is closed): resume() first.
  std::ostream& out() { return *out_; }
  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temporaryPath() const { return tmp_; }
  // Closes the descriptor and keeps what was written, so that a recording of thousands of
  // workloads over a day holds descriptors for the live ones only; resume() reopens it to append.
  Status pause();
  Status resume();
  bool paused() const { return out_ && !out_->is_open(); }
  // Flush, keep the replaced file's mode, sync, rename into place, sync the folder.
  Status commit();
  void discard();  // remove the temporary file now

 private:
  AtomicFile() = default;
  std::filesystem::path path_, tmp_;
  std::unique_ptr<std::ofstream> out_;
};

Status writeFileAtomically(const std::filesystem::path& path, std::string_view text);
// The same, with the content streamed by `write` (for files too large to hold as one string).
Status writeFileAtomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);

// A secret kept in a file, as Prometheus's credentials_file and the agent's bearer_token_file hold
// one: the file's first line without surrounding blanks (an editor's or Windows' line end, or
// `echo TOKEN > file`). An error names the file: unreadable, or a blank first line.
Result<std::string> readTokenFile(const std::filesystem::path& path);

// Whether `path` can be written as a file: not a directory, in a directory that exists and is
// writable. Checked before long work (training, a replay) so a typo in an output path fails at once.
Status checkOutputFile(const std::filesystem::path& path);

}  // namespace foresight
