#include "foresight/core/files.h"
#include "foresight/core/reload.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace foresight {
namespace {
namespace fs = std::filesystem;

fs::path freshDir() {
  const fs::path dir = fs::temp_directory_path() / ("foresight-files-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const fs::path& f) {
  std::stringstream ss;
  ss << std::ifstream(f).rdbuf();
  return ss.str();
}

// What a folder holds, by name: no temporary file may be left beside the target.
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(WriteFileAtomically, ReplacesTheWholeFile) {
  const fs::path dir =
      fs::temp_directory_path() / ("foresight-files-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  ASSERT_TRUE(writeFileAtomically(dir / "a.json", "first version, longer\n"));
  ASSERT_TRUE(writeFileAtomically(dir / "a.json", "second\n"));
  EXPECT_EQ(slurp(dir / "a.json"), "second\n");
  EXPECT_EQ(entries(dir), std::vector<std::string>{"a.json"});
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
  EXPECT_EQ(entries(dir), std::vector<std::string>{"taken.json"});
  fs::remove_all(dir);
}

// The replaced file keeps its permissions (a 0600 results file stayed private only until the
// first rewrite made it 0644); a new file gets the usual 0666 less the umask, not mkstemp's 0600.
TEST(WriteFileAtomically, KeepsTheModeOfTheFileItReplaces) {
  const fs::path dir = freshDir();
  ASSERT_TRUE(writeFileAtomically(dir / "private.json", "a"));
  fs::permissions(dir / "private.json", fs::perms::owner_read | fs::perms::owner_write);
  ASSERT_TRUE(writeFileAtomically(dir / "private.json", "b"));
  EXPECT_EQ(fs::status(dir / "private.json").permissions(), fs::perms::owner_read | fs::perms::owner_write);
  const mode_t mask = ::umask(022);
  ASSERT_TRUE(writeFileAtomically(dir / "new.json", "c"));
  ::umask(mask);
  EXPECT_EQ(fs::status(dir / "new.json").permissions(),
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  fs::remove_all(dir);
}

// A target that is a symlink stays one: the file it points to is replaced.
TEST(WriteFileAtomically, ALinkStaysALink) {
  const fs::path dir = freshDir();
  fs::create_directories(dir / "keep");
  ASSERT_TRUE(writeFileAtomically(dir / "keep/real.json", "old"));
  fs::create_symlink("keep/real.json", dir / "link.json");
  ASSERT_TRUE(writeFileAtomically(dir / "link.json", "new"));
  EXPECT_TRUE(fs::is_symlink(dir / "link.json"));
  EXPECT_EQ(slurp(dir / "keep/real.json"), "new");
  EXPECT_EQ(entries(dir / "keep"), std::vector<std::string>{"real.json"});
  fs::remove_all(dir);
}

// The temporary file is a new one of its own: a link planted at the name it used to take
// ("FILE.tmp", e.g. by another user in /tmp) is neither followed nor written through.
TEST(WriteFileAtomically, APlantedTemporaryNameIsNotFollowed) {
  const fs::path dir = freshDir();
  ASSERT_TRUE(writeFileAtomically(dir / "victim", "precious"));
  fs::create_symlink(dir / "victim", dir / "out.json.tmp");
  ASSERT_TRUE(writeFileAtomically(dir / "out.json", "result"));
  EXPECT_EQ(slurp(dir / "victim"), "precious");
  EXPECT_EQ(slurp(dir / "out.json"), "result");
  fs::remove_all(dir);
}

// Two writers of one file (two recordings into one folder) each stream into a temporary file of
// their own: the one committed last is the file, whole, and an abandoned one leaves nothing.
TEST(AtomicFile, TwoWritersOfOneFileDoNotShareATemporaryFile) {
  const fs::path dir = freshDir();
  auto a = AtomicFile::create(dir / "w.csv");
  auto b = AtomicFile::create(dir / "w.csv");
  auto c = AtomicFile::create(dir / "w.csv");
  ASSERT_TRUE(a && b && c);
  EXPECT_NE(a->temporaryPath(), b->temporaryPath());
  for (int i = 0; i < 1000; ++i) {
    a->out() << "a" << i << '\n';
    b->out() << "b" << i << '\n';
  }
  c->out() << "abandoned\n";
  ASSERT_TRUE(b->commit());
  ASSERT_TRUE(a->commit());
  const std::string text = slurp(dir / "w.csv");
  EXPECT_EQ(text.substr(0, 3), "a0\n");
  EXPECT_EQ(text.find('b'), std::string::npos);
  EXPECT_FALSE(a->commit()) << "a second commit";
  c->discard();
  EXPECT_EQ(entries(dir), std::vector<std::string>{"w.csv"});
  {
    auto d = AtomicFile::create(dir / "x.csv");
    ASSERT_TRUE(d);
    d->out() << "never committed\n";
  }
  EXPECT_EQ(entries(dir), std::vector<std::string>{"w.csv"});
  fs::remove_all(dir);
}

// A paused file holds no descriptor, keeps what was written and, resumed, appends; committed while
// paused it is put in place whole.
TEST(AtomicFile, APausedFileKeepsItsTextAndAppendsWhenResumed) {
  const fs::path dir = freshDir();
  auto f = AtomicFile::create(dir / "p.csv");
  ASSERT_TRUE(f);
  f->out() << "one\n";
  ASSERT_TRUE(f->pause());
  EXPECT_TRUE(f->paused());
  EXPECT_TRUE(f->pause());  // again: nothing to do
  EXPECT_EQ(slurp(f->temporaryPath()), "one\n");  // flushed by the pause
  ASSERT_TRUE(f->resume());
  EXPECT_FALSE(f->paused());
  f->out() << "two\n";
  ASSERT_TRUE(f->pause());
  ASSERT_TRUE(f->commit());
  EXPECT_EQ(slurp(dir / "p.csv"), "one\ntwo\n");
  EXPECT_FALSE(f->resume()) << "resumed after commit";
  EXPECT_EQ(entries(dir), std::vector<std::string>{"p.csv"});
  fs::remove_all(dir);
}

TEST(ReadTokenFile, TakesTheFirstLineWithoutBlanksAndNamesTheFileOtherwise) {
  const fs::path dir = freshDir();
  std::ofstream(dir / "t") << " \ttok-en \r\nsecond\n";
  auto t = readTokenFile(dir / "t");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(*t, "tok-en");
  std::ofstream(dir / "bare") << "tok";  // no line end at all
  EXPECT_EQ(readTokenFile(dir / "bare").value_or(""), "tok");
  std::ofstream(dir / "blank") << " \r\ntok\n";
  auto blank = readTokenFile(dir / "blank");
  ASSERT_FALSE(blank);
  EXPECT_NE(blank.error().message.find((dir / "blank").string() + ": its first line is empty"), std::string::npos);
  auto missing = readTokenFile(dir / "missing");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find((dir / "missing").string() + ": cannot read"), std::string::npos);
  fs::remove_all(dir);
}

// Loaded again only when the file changed; a change that does not load keeps the last value and
// is tried once, not at every use; the first load's error is the caller's.
TEST(Reloading, LoadsAgainOnlyWhenTheFileChangesAndKeepsTheLastGoodValue) {
  const fs::path dir = freshDir();
  int loads = 0;
  Reloading<std::string> token({dir / "t"}, [&] { ++loads; return readTokenFile(dir / "t"); }, "test token");
  auto missing = token.current();
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("cannot read"), std::string::npos);
  std::ofstream(dir / "t") << "one\n";
  EXPECT_EQ(**token.current(), "one");
  const int after_first = loads;
  EXPECT_EQ(**token.current(), "one");
  EXPECT_EQ(loads, after_first) << "read again though unchanged";
  std::ofstream(dir / "t.new") << "two\n";
  fs::rename(dir / "t.new", dir / "t");
  auto held = token.current();
  EXPECT_EQ(**held, "two");
  std::ofstream(dir / "t") << "\n";  // rewritten in place, blank
  EXPECT_EQ(**token.current(), "two");
  EXPECT_EQ(**token.current(), "two");
  EXPECT_EQ(loads, after_first + 2) << "a change that does not load is tried once";
  fs::remove(dir / "t");
  EXPECT_EQ(**token.current(), "two");
  std::ofstream(dir / "t") << "three\n";
  EXPECT_EQ(**token.current(), "three");
  EXPECT_EQ(**held, "two") << "a value handed out stays as it was";
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
