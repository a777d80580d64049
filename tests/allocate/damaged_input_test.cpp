// The allocator's inputs that a user or a cluster writes (planner and price files, kubeconfig,
// label selectors, API times), damaged: each is read or refused with its origin named, never a
// crash or an exception out of the parser (the sanitizer build also checks the reads stay in
// bounds).
#include <gtest/gtest.h>

#include <string>

#include "foresight/allocate/cost.h"
#include "foresight/allocate/kubernetes.h"
#include "foresight/allocate/planner.h"
#include "support/mutate.h"
#include "test_util.h"

namespace foresight::allocate {
namespace {

using test_support::mutations;

// Counts both outcomes, so a test can check that the mutations reach the parser's checks and also
// leave inputs it reads.
struct Outcomes {
  int read = 0, refused = 0;
  template <class T>
  void count(const Result<T>& r, const std::string& origin, const std::string& text) {
    if (r) {
      ++read;
      return;
    }
    ++refused;
    if (!origin.empty()) {
      EXPECT_NE(r.error().message.find(origin), std::string::npos) << r.error().message << "\n" << text;
    }
  }
};

TEST(DamagedInput, PlannerAndPriceFilesAreReadOrRefusedWithTheFileNamed) {
  for (const char* name : {"planner.yaml", "prices.yaml"}) {
    const std::string seed = testing::readFile(std::string(FORESIGHT_SOURCE_DIR) + "/config/" + name);
    ASSERT_FALSE(seed.empty()) << name;
    Outcomes o;
    for (const auto& text : mutations(seed, 300)) {
      if (std::string(name) == "planner.yaml") {
        Result<PlannerConfigs> r = fail(ErrorCode::kInternal, "not read");
        ASSERT_NO_THROW(r = parsePlannerConfigs(text, name)) << text;
        o.count(r, name, text);
      } else {
        Result<PriceCatalog> r = fail(ErrorCode::kInternal, "not read");
        ASSERT_NO_THROW(r = parsePriceCatalog(text, name)) << text;
        o.count(r, name, text);
      }
    }
    EXPECT_GT(o.read, 30) << name;
    EXPECT_GT(o.refused, 30) << name;
  }
}

TEST(DamagedInput, KubeconfigIsReadOrRefusedWithTheFileNamed) {
  const std::string seed = R"(apiVersion: v1
kind: Config
current-context: dev
contexts:
- name: dev
  context: {cluster: c1, user: u1, namespace: shop}
clusters:
- name: c1
  cluster: {server: "https://10.0.0.1:6443", certificate-authority-data: "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClgKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="}
users:
- name: u1
  user: {token: "abc"}
)";
  testing::TempDir tmp;
  const auto path = tmp.path() / "kubeconfig";
  Outcomes o;
  for (const auto& text : mutations(seed, 300)) {
    testing::writeFile(path, text);
    Result<k8s::ClusterAccess> r = fail(ErrorCode::kInternal, "not read");
    ASSERT_NO_THROW(r = k8s::loadKubeconfig(path.string(), "")) << text;
    o.count(r, path.string(), text);
  }
  EXPECT_GT(o.read, 30);
  EXPECT_GT(o.refused, 30);
}

TEST(DamagedInput, LabelSelectorsAndApiTimesAreParsedOrRefused) {
  Outcomes selectors;
  for (const auto& text : mutations("app in (web, api),tier!=back,!legacy,version>2,env", 1000)) {
    Result<k8s::LabelSelector> r = fail(ErrorCode::kInternal, "not read");
    ASSERT_NO_THROW(r = k8s::LabelSelector::parse(text)) << text;
    selectors.count(r, "", text);
  }
  EXPECT_GT(selectors.read, 100);
  EXPECT_GT(selectors.refused, 100);
  Outcomes times;
  for (const auto& text : mutations("2026-12-06T06:00:00.123+01:00", 1000)) {
    Result<std::int64_t> r = fail(ErrorCode::kInternal, "not read");
    ASSERT_NO_THROW(r = k8s::parseRfc3339(text)) << text;
    times.count(r, "", text);
  }
  EXPECT_GT(times.read, 20);
  EXPECT_GT(times.refused, 100);
}

}  // namespace
}  // namespace foresight::allocate
