// libvirt backend against libvirt's built-in test driver (test:///default: no daemon). Its
// default domain "test" starts with 2 vCPUs (2 maximum), 2 GiB current and 8 GiB maximum memory.
#include <gtest/gtest.h>

#include "foresight/allocate/audit.h"
#include "test_util.h"

namespace foresight::allocate {
namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024;

std::unique_ptr<Backend> testDriver() {
  BackendOptions o;
  o.values["uri"] = "test:///default";
  return makeLibvirtBackend(o);
}

TEST(Libvirt, ReadsAndSetsVcpusAndBalloon) {
  auto b = testDriver();
  auto cur = b->current("test");
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_EQ(*(*cur)[Resource::kCpu], 2.0);
  EXPECT_EQ(*(*cur)[Resource::kMemory], 2 * kGiB);
  Allocation t;
  t[Resource::kCpu] = 0.6;  // rounds up to 1 vCPU
  t[Resource::kMemory] = 1 * kGiB;
  ASSERT_TRUE(b->apply("test", t));
  cur = b->current("test");
  ASSERT_TRUE(cur);
  EXPECT_EQ(*(*cur)[Resource::kCpu], 1.0);
  EXPECT_EQ(*(*cur)[Resource::kMemory], 1 * kGiB);
  ASSERT_TRUE(b->apply("test", t));  // idempotent
}

TEST(Libvirt, FailedVcpuChangeRestoresMemory) {
  auto b = testDriver();
  auto before = b->current("test");
  ASSERT_TRUE(before);
  Allocation t;
  t[Resource::kMemory] = 1.5 * kGiB;
  t[Resource::kCpu] = 64;  // above the domain's maximum: libvirt refuses
  auto st = b->apply("test", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("domain 'test'"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("memory restored"), std::string::npos) << st.error().message;
  auto after = b->current("test");
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, *before);
}

// The audit trail records what libvirt enforces (whole vCPUs), so the rollback check passes.
TEST(Libvirt, AuditRecordsTheRoundedVcpusAndRollsBack) {
  testing::TempDir tmp;
  auto log = AuditLog::open((tmp.path() / "a.db").string());
  ASSERT_TRUE(log);
  BackendRegistry registry("backend");
  registerBackends(registry);
  BackendOptions o;
  o.values["uri"] = "test:///default";
  auto b = registry.create("libvirt", o);
  ASSERT_TRUE(b);
  ASSERT_TRUE((*b)->apply("test", [] {
    Allocation a;
    a[Resource::kCpu] = 2;
    return a;
  }()));
  Allocation t;
  t[Resource::kCpu] = 0.6;
  auto id = applyAndRecord(**b, "libvirt", o, *log, "test", t, "r");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*log->get(*id)->after[Resource::kCpu], 1.0);
  // The rollback opens its own connection; test:///default state is shared within the process.
  auto rb = rollback(*log, registry, *id);
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(*(*(*b)->current("test"))[Resource::kCpu], 2.0);
}

TEST(Libvirt, ErrorsNameTheDomain) {
  auto b = testDriver();
  auto cur = b->current("no-such-vm");
  ASSERT_FALSE(cur);
  EXPECT_EQ(cur.error().code, ErrorCode::kNotFound);
  EXPECT_NE(cur.error().message.find("no-such-vm"), std::string::npos);
  Allocation t;
  t[Resource::kMemory] = 64 * kGiB;  // above the 8 GiB maximum
  auto st = b->apply("test", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("'test'"), std::string::npos);
  t = {};
  t[Resource::kDiskIo] = 1e6;
  EXPECT_FALSE(b->apply("test", t));
}

}  // namespace
}  // namespace foresight::allocate
