#include "csv.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace foresight::match::detail {

std::size_t CsvTable::column(const std::string& name) const {
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return i;
  return std::string::npos;
}

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

Result<CsvTable> readCsv(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(ErrorCode::kNotFound, "{}: cannot open", file.string());
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  if (text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);  // the UTF-8 mark spreadsheets save
  CsvTable t;
  t.file = file.string();
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  std::size_t line = 1, row_line = 1;
  auto endRow = [&]() -> Status {
    row.push_back(trim(field));
    field.clear();
    const bool blank = row.size() == 1 && row[0].empty();
    if (!blank) {
      if (t.header.empty()) {
        t.header = row;
      } else if (row.size() != t.header.size()) {
        return fail(ErrorCode::kParse, "{}:{}: {} fields, the header has {}", t.file, row_line,
                    row.size(), t.header.size());
      } else {
        t.rows.push_back(row);
        t.lines.push_back(row_line);
      }
    }
    row.clear();
    any = false;
    return ok();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(trim(field));
      field.clear();
      any = true;
    } else if (c == '\n') {
      if (auto s = endRow(); !s) return tl::unexpected(s.error());
      row_line = ++line;
    } else if (c != '\r') {
      field += c;
      any = true;
    }
  }
  if (quoted) return fail(ErrorCode::kParse, "{}:{}: unterminated quote", t.file, row_line);
  if (any || !field.empty())
    if (auto s = endRow(); !s) return tl::unexpected(s.error());
  if (t.header.empty()) return fail(ErrorCode::kParse, "{}:1: empty file, expected a header", t.file);
  return t;
}

bool looksNumeric(const std::string& text, double& value) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end && std::isfinite(value);
}

Result<double> parseNumber(const std::string& text, const CsvTable& t, std::size_t row,
                           const std::string& column) {
  double v = 0;
  if (!looksNumeric(text, v))
    return fail(ErrorCode::kParse, "{}:{}: column '{}': '{}' is not a number", t.file, t.lines[row],
                column, text);
  return v;
}

}  // namespace foresight::match::detail
