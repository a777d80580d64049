#include "foresight/core/files.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

namespace foresight {
namespace {
namespace fs = std::filesystem;

TEST(WriteFileAtomically, ReplacesTheWholeFile) {
  const fs::path dir =
      fs::temp_directory_path() / ("foresight-files-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  ASSERT_TRUE(writeFileAtomically(dir / "a.json", "first version, longer\n"));
  ASSERT_TRUE(writeFileAtomically(dir / "a.json", "second\n"));
  std::stringstream ss;
  ss << std::ifstream(dir / "a.json").rdbuf();
  EXPECT_EQ(ss.str(), "second\n");
  EXPECT_FALSE(fs::exists(dir / "a.json.tmp"));
  fs::remove_all(dir);
}

TEST(WriteFileAtomically, FailureNamesTheFileAndLeavesNothing) {
  const fs::path missing = fs::temp_directory_path() / "foresight-no-such-dir" / "out.json";
  auto s = writeFileAtomically(missing, "x");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("out.json"), std::string::npos) << s.error().message;
  EXPECT_FALSE(fs::exists(missing));
}

TEST(WriteFileAtomically, ARenameFailureGivesItsReasonAndLeavesNoTemporaryFile) {
  const fs::path dir =
      fs::temp_directory_path() / ("foresight-files-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir / "taken.json");  // a directory where the file should go
  auto s = writeFileAtomically(dir / "taken.json", "x");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("Is a directory"), std::string::npos) << s.error().message;
  EXPECT_FALSE(fs::exists(dir / "taken.json.tmp"));
  fs::remove_all(dir);
}

TEST(CheckOutputFile, RefusesDirectoriesAndMissingFolders) {
  const fs::path dir =
      fs::temp_directory_path() / ("foresight-files-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir / "d");
  EXPECT_TRUE(checkOutputFile(dir / "new.json"));
  EXPECT_FALSE(checkOutputFile(dir / "d"));
  EXPECT_FALSE(checkOutputFile(dir / "missing" / "x.json"));
  EXPECT_FALSE(checkOutputFile(""));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace foresight
