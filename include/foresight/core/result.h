#pragma once
// Result<T>: the return type of anything that touches the environment (files, processes, servers,
// user input). Programming errors assert or throw; environment failures are values.

#include <string>
#include <utility>

#include <fmt/format.h>
#include <tl/expected.hpp>

namespace foresight {

enum class ErrorCode {
  kInvalidArgument,  // the caller (a user, a flag, a config key) asked for something impossible
  kNotFound,         // a file, workload or name that does not exist
  kParse,            // malformed input; the message names file and line
  kIo,               // the OS refused a read or write
  kUnavailable,      // a peer (server, kernel feature) is not there
  kInternal,
};

const char* toString(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  // "file:line: message" when the error comes from input data.
  std::string what() const { return message; }
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

template <typename... Args>
tl::unexpected<Error> fail(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  return tl::unexpected<Error>(Error{code, fmt::format(f, std::forward<Args>(args)...)});
}

inline Status ok() { return {}; }

}  // namespace foresight
