// `foresight allocate`, `cost` and `history` refuse bad arguments (exit 2) before they change or
// record anything; `history` refuses an audit database that does not exist.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "support/shell.h"
#include "test_util.h"

namespace {
namespace fs = std::filesystem;
namespace fixture = foresight::allocate::testing;

using foresight::test_support::Ran;

class AllocateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    // A cgroup v1 fixture tree, as in cli_test.sh.
    fs::create_directories(dir_ / "cg/blkio/app");
    write("cg/cpu/app/cpu.cfs_quota_us", "-1\n");
    write("cg/cpu/app/cpu.cfs_period_us", "100000\n");
    write("cg/memory/app/memory.limit_in_bytes", "9223372036854771712\n");
    write("cg/memory/app/memory.usage_in_bytes", "104857600\n");
  }

  void write(const std::string& name, const std::string& text) { fixture::writeFile(dir_ / name, text); }
  std::string read(const std::string& name) { return fixture::readFile(dir_ / name); }
  std::string db() const { return (dir_ / "audit.db").string(); }
  Ran run(const std::string& args) {
    return foresight::test_support::runShell(
        fmt::format("FORESIGHT_AUDIT_DB={} {} {}", db(), FORESIGHT_BIN, args));
  }
  Ran allocate(const std::string& args) {
    return run(fmt::format("allocate --backend cgroup-v1 -o root={} --workload app {}",
                           (dir_ / "cg").string(), args));
  }
  // --need-cpu and --machine are added unless `args` gives them (CLI11 refuses them twice).
  Ran cost(const std::string& args) {
    std::string all = args;
    if (args.find("--need-cpu") == std::string::npos) all += " --need-cpu 3";
    if (args.find("--machine") == std::string::npos) all += " --machine m4.large";
    return run(fmt::format("cost --catalog {}/config/prices.yaml --need-memory 6G --current-cpu 2 "
                           "--current-memory 4G {}",
                           FORESIGHT_SOURCE_DIR, all));
  }

  fixture::TempDir tmp_;
  const fs::path& dir_ = tmp_.path();
};

void expectBadArgument(const Ran& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST_F(AllocateCli, ZeroOrAbsurdMemoryIsRefusedAndNothingChanges) {
  for (const char* m : {"0", "0G", "1e30", "16777216T"}) {
    SCOPED_TRACE(m);
    expectBadArgument(allocate(fmt::format("--memory {}", m)), "--memory");
  }
  EXPECT_EQ(read("cg/memory/app/memory.limit_in_bytes"), "9223372036854771712");
  EXPECT_FALSE(fs::exists(db()));
}

TEST_F(AllocateCli, NegativeUsageMarginIsRefused) {
  expectBadArgument(allocate("--memory 50M --usage-margin -5"), "--usage-margin");
  EXPECT_EQ(read("cg/memory/app/memory.limit_in_bytes"), "9223372036854771712");
}

TEST_F(AllocateCli, DiskIoWithoutADeviceIsRefusedBeforeTheAuditTrail) {
  expectBadArgument(allocate("--io 10M"), "io_device");
  EXPECT_FALSE(fs::exists(db())) << "a change that cannot work was recorded";
  auto ok = allocate("--cpu 1.5");  // the fixture itself works
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(read("cg/cpu/app/cpu.cfs_quota_us"), "150000");
}

// Options the backend refuses, and "max" where the backend has no unlimited, are bad arguments
// found before anything is read or recorded; before, each attempt left a FAILED audit row (and a
// malformed io_device exited 1).
TEST_F(AllocateCli, ABackendsRefusedOptionsAndUnlimitedWhereThereIsNoneAreBadArguments) {
  expectBadArgument(allocate("-o io_device=sda --io 10M"), "io_device='sda'");
  expectBadArgument(run("allocate --backend libvirt -o uri=test:///default --workload test --cpu max"),
                    "--cpu max: the libvirt backend needs an amount");
  expectBadArgument(run("allocate --backend kubernetes --workload ns/pod --memory max"),
                    "--memory max: the kubernetes backend needs an amount");
  expectBadArgument(run("allocate --backend systemd --workload web.service --io 10M"),
                    "--io: systemd needs the block device to throttle: -o io_device=MAJ:MIN");
  expectBadArgument(run("allocate --backend systemd -o io_device=sda --workload web.service --io 10M"),
                    "systemd option io_device='sda'");
  expectBadArgument(run("allocate --backend auto --workload app --io 10M"),
                    "--io: auto needs the block device to throttle: -o io_device=MAJ:MIN");
  expectBadArgument(run("allocate --backend libvirt -o uri=test:///default --workload test --io 10M"),
                    "--io: libvirt needs the guest's disk to throttle: -o disk=TARGET");
  expectBadArgument(run("allocate --backend systemd -o bus= --workload web.service --cpu 1"),
                    "-o bus= is empty");
  EXPECT_FALSE(fs::exists(db())) << "a change that cannot work was recorded";
}

// The safety rail reads a libvirt guest's own use: libvirt's default test domain's balloon driver
// says 1 GiB of its 2 GiB is in use, so 512M is refused (nothing audited) and 1.5G is done.
TEST_F(AllocateCli, ABalloonBelowWhatTheGuestSaysItUsesIsRefused) {
  auto r = run("allocate --backend libvirt -o uri=test:///default --workload test --memory 512M");
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.err.find("below the memory in use 1.00GiB"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(db()));
  r = run("allocate --backend libvirt -o uri=test:///default --workload test --memory 1.5G");
  EXPECT_EQ(r.exit_code, 0) << r.all();
  // The documented options are taken (balloon_wait was refused until 2026-12-07).
  r = run("allocate --backend libvirt -o uri=test:///default -o balloon_wait=3 -o disk=vda --workload test "
          "--memory 1.5G --io max");
  EXPECT_EQ(r.exit_code, 0) << r.all();
  // The guests loop's arguments are checked as every command's.
  expectBadArgument(run("guests --period 0"), "--period");
}

TEST_F(AllocateCli, HistoryRefusesANonPositiveRollbackAndAMissingDb) {
  ASSERT_EQ(allocate("--cpu 1.5").exit_code, 0);
  for (const char* id : {"0", "-5"}) {
    auto r = run(fmt::format("history --rollback {}", id));
    expectBadArgument(r, "--rollback");
    EXPECT_EQ(r.out.find("cpu=1.5"), std::string::npos) << "printed the history instead";
  }
  const auto typo = dir_ / "typo.db";
  auto r = run("history --db " + typo.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("typo.db"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(typo));
  EXPECT_EQ(run("history").exit_code, 0);
}

// Listing reads the trail as it is: the file is left byte for byte (no WAL switch, no schema), and
// a reader who may not write the trail or its folder, as an auditor often is, can list it.
TEST_F(AllocateCli, HistoryListsATrailItCannotWriteAndChangesNothing) {
  ASSERT_EQ(allocate("--cpu 1.5").exit_code, 0);
  const auto before = read("audit.db");
  auto listed = run("history");
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(read("audit.db"), before);

  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(db(), fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                            fs::perms::others_read);
  // As another user where this runs as root (root could write anyway); otherwise the folder and
  // file are made read-only for this user.
  const bool root = ::geteuid() == 0;
  if (!root) fs::permissions(dir_, fs::perms::owner_write, fs::perm_options::remove);
  const auto r = foresight::test_support::runShell(
      fmt::format("{} {} history --db {}", root ? "setpriv --reuid=65534 --regid=65534 --clear-groups" : "",
                  FORESIGHT_BIN, db()));
  if (!root) fs::permissions(dir_, fs::perms::owner_write, fs::perm_options::add);
  EXPECT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("cpu=1.5"), std::string::npos) << r.all();
  EXPECT_EQ(read("audit.db"), before);
}

TEST_F(AllocateCli, CostValidatesItsArguments) {
  auto ok = cost("");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  for (const auto& [args, flag] : std::vector<std::pair<std::string, std::string>>{
           {"--need-cpu 3abc", "--need-cpu"},
           {"--need-cpu nan", "--need-cpu"},
           {"--need-cpu -3", "--need-cpu"},
           {"--spare-cpu inf", "--spare-cpu"},
           {"--hours -24", "--hours"},
           {"--hours 0", "--hours"},
           {"--hours nan", "--hours"},
           {"--risk-budget -1", "--risk-budget"},
           {"--risk-budget 1.5", "--risk-budget"},
           {"--migration-cost -1", "--migration-cost"},
           {"--current-hourly -0.5", "--current-hourly"},
           {"--top -1", "--top"},
           {"--machine nosuch", "nosuch"},
       }) {
    SCOPED_TRACE(args);
    auto r = cost(args);
    expectBadArgument(r, flag);
    EXPECT_EQ(r.out.find("->"), std::string::npos) << "chose anyway:\n" << r.out;
  }
  EXPECT_NE(cost("--machine nosuch").err.find("m4.large"), std::string::npos);  // names the known
}

}  // namespace
