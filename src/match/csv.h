#pragma once
// A small CSV reader for the matcher's tables: header row, RFC-4180 quotes, line numbers kept so
// that errors name file and line.

#include <filesystem>
#include <string>
#include <vector>

#include "foresight/core/result.h"

namespace foresight::match::detail {

struct CsvTable {
  std::string file;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::size_t> lines;  // 1-based line of each row

  std::size_t column(const std::string& name) const;  // npos when absent
};

Result<CsvTable> readCsv(const std::filesystem::path& file);
Result<double> parseNumber(const std::string& text, const CsvTable& t, std::size_t row,
                           const std::string& column);
bool looksNumeric(const std::string& text, double& value);
std::string trim(std::string s);

}  // namespace foresight::match::detail
