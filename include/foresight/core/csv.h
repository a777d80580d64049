#pragma once
// Writing CSV: RFC 4180 quoting of one field.

#include <string>
#include <string_view>

namespace foresight {

// The field as is, or in double quotes (inner quotes doubled) when it holds a comma, a quote or a
// line break.
inline std::string csvQuote(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace foresight
