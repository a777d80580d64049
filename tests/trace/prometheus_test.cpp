// The Prometheus importer's pure parts: query_range answers, ids, windows, presets.
#include "foresight/trace/prometheus.h"

#include <gtest/gtest.h>

#include "support/mutate.h"

namespace foresight::trace {
namespace {

TEST(PrometheusAnswer, SeriesAreNamedByTheirLabelValuesAndBadSamplesAreDropped) {
  const std::string body = R"({"status":"success","data":{"resultType":"matrix","result":[
    {"metric":{"__name__":"x","pod":"web-1","namespace":"shop","container":"app,v2"},
     "values":[[1700000000,"0.5"],[1700000300,"NaN"],[1700000600,"+Inf"],[1700000900,"-1"],[1700001200,"2e-3"]]},
    {"metric":{},"values":[[1700000000.0,"7"]]}]}})";
  std::size_t dropped = 0;
  auto answer = parseQueryRange(body, dropped);
  ASSERT_TRUE(answer) << answer.error().message;
  const auto& s = answer->series;
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].id, "app_v2/shop/web-1");  // container, namespace, pod: by label name
  EXPECT_EQ(s[0].labels, R"({container="app,v2",namespace="shop",pod="web-1"})");
  EXPECT_EQ(s[0].time, (std::vector<std::int64_t>{1700000000, 1700001200}));
  EXPECT_EQ(s[0].value, (std::vector<double>{0.5, 0.002}));
  EXPECT_EQ(dropped, 3u);
  EXPECT_EQ(s[1].id, "_");
  EXPECT_EQ(s[1].labels, "{}");
  EXPECT_TRUE(answer->warnings.empty());
}

TEST(PrometheusAnswer, ErrorsSayWhatPrometheusSaid) {
  std::size_t dropped = 0;
  auto refused = parseQueryRange(
      R"({"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected <EOF>"})", dropped);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("bad_data: 1:5: parse error"), std::string::npos) << refused.error().message;
  auto vector = parseQueryRange(R"({"status":"success","data":{"resultType":"vector","result":[]}})", dropped);
  ASSERT_FALSE(vector);
  EXPECT_NE(vector.error().message.find("resultType 'vector'"), std::string::npos);
  auto html = parseQueryRange("<html>502 Bad Gateway</html>", dropped);
  ASSERT_FALSE(html);
  EXPECT_NE(html.error().message.find("not a Prometheus API answer"), std::string::npos);
  EXPECT_NE(html.error().message.find("502 Bad Gateway"), std::string::npos);
}

// The answer is read as it is parsed: fields in any order, ones it does not know skipped.
TEST(PrometheusAnswer, FieldOrderAndUnknownFieldsDoNotMatter) {
  const std::string body = R"({"warnings":["remote_read: connection refused","x"],"data":{"result":[
    {"values":[[1700000000,"1"],[1700000300,"2"]],"extra":{"a":[1,[2]],"warnings":["not one"]},"metric":{"pod":"b","ns":"a"}}],
    "resultType":"matrix","stats":{"timings":{"evalTotalTime":0.1}}},"infos":["not a warning"],"status":"success"})";
  std::size_t dropped = 0;
  auto answer = parseQueryRange(body, dropped);
  ASSERT_TRUE(answer) << answer.error().message;
  const auto& s = answer->series;
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].id, "a/b");
  EXPECT_EQ(s[0].value, (std::vector<double>{1, 2}));
  EXPECT_EQ(dropped, 0u);
  // Only the top-level `warnings` say the answer may be incomplete.
  EXPECT_EQ(answer->warnings, (std::vector<std::string>{"remote_read: connection refused", "x"}));
}

TEST(PrometheusAnswer, ASampleThatIsNotATimeAndAValueIsRefused) {
  for (const char* sample : {R"([1700000000])", R"(["1700000000","1"])", R"([1700000000,"1",3])", R"([null,"1"])",
                             R"(1700000000)", R"("1")", R"({"t":1700000000})", R"(null)"}) {
    const std::string body = std::string(R"({"status":"success","data":{"resultType":"matrix","result":[)") +
                             R"({"metric":{"pod":"a"},"values":[[1700000000,"1"],)" + sample + "]}]}}";
    std::size_t dropped = 0;
    auto s = parseQueryRange(body, dropped);
    ASSERT_FALSE(s) << sample;
    EXPECT_NE(s.error().message.find("a sample of series 1 is not [time, \"value\"]"), std::string::npos)
        << sample << ": " << s.error().message;
  }
  std::size_t dropped = 0;
  auto cut = parseQueryRange(R"({"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[17)", dropped);
  ASSERT_FALSE(cut);
  EXPECT_NE(cut.error().message.find("not a Prometheus API answer"), std::string::npos) << cut.error().message;
}

TEST(PrometheusQueryWindows, CoverTheRangeWithinThePointLimit) {
  const auto w = queryWindows(1000, 1000 + 300 * 25, 300, 10);  // 26 points, 10 a query
  ASSERT_EQ(w.size(), 3u);
  using Window = std::pair<std::int64_t, std::int64_t>;
  EXPECT_EQ(w[0], Window(1000, 1000 + 300 * 9));
  EXPECT_EQ(w[1].first, 1000 + 300 * 10);
  EXPECT_EQ(w[2], Window(1000 + 300 * 20, 1000 + 300 * 25));
  EXPECT_EQ(queryWindows(5, 5, 60).size(), 1u);
}

// Names are matched exactly: a dot in a pod's name is no wildcard, a quote ends no string.
TEST(PrometheusPresets, PodContainerQueriesMatchTheNamesExactly) {
  auto q = podContainerQueries("sh\"op", {"web.1", "web-2"}, {"app"}, 120);
  const std::string match = R"({namespace="sh\"op",pod=~"web\\.1|web-2",container=~"app"})";
  EXPECT_EQ(q[index(Resource::kCpu)],
            "max by (container) (sum by (pod, container, job) (rate(container_cpu_usage_seconds_total" + match +
                "[120s])))");
  EXPECT_EQ(q[index(Resource::kMemory)],
            "max by (container) (sum by (pod, container, job) (container_memory_working_set_bytes" + match + "))");
  EXPECT_EQ(q[index(Resource::kDiskIo)], "");
  EXPECT_EQ(q[index(Resource::kNetwork)], "");
}

TEST(PrometheusPresets, FillTheStepAndRefuseUnknownNames) {
  auto f = presetQueries("foresight", 300);
  ASSERT_TRUE(f);
  EXPECT_EQ((*f)[index(Resource::kCpu)], "avg by (instance, workload) (avg_over_time(foresight_resource_cpu[300s]))");
  auto c = presetQueries("cadvisor", 60);
  ASSERT_TRUE(c);
  EXPECT_NE((*c)[index(Resource::kCpu)].find("rate(container_cpu_usage_seconds_total"), std::string::npos);
  EXPECT_NE((*c)[index(Resource::kCpu)].find("[60s]"), std::string::npos);
  // Per pod in cAdvisor: given to a pod's only container (checked on a server in prometheus_import_test).
  EXPECT_NE((*c)[index(Resource::kNetwork)].find("rate(container_network_transmit_bytes_total{pod!=\"\"}[60s])"),
            std::string::npos);
  EXPECT_EQ((*c)[index(Resource::kNetwork)].find("{step}"), std::string::npos);
  auto bad = presetQueries("datadog", 60);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("known: foresight, cadvisor"), std::string::npos);
  EXPECT_EQ(withStep("rate(x[{step}]) / rate(y[{step}])", 15), "rate(x[15s]) / rate(y[15s])");
}

// A damaged answer from the server is parsed or refused, never an exception; what is parsed keeps
// one value per time.
TEST(PrometheusAnswer, DamagedAnswersAreParsedOrRefused) {
  const std::string seed = R"({"status":"success","warnings":["partial"],"data":{"resultType":"matrix","result":[
    {"metric":{"__name__":"x","pod":"web-1","namespace":"shop","container":"app"},
     "values":[[1700000000,"0.5"],[1700000060.5,"1e3"],[1700000120,"NaN"],[1700000180,"+Inf"]]},
    {"metric":{},"values":[[1700000000,"-1"],[1700000060,"2"]]}]}})";
  int parsed = 0, refused = 0;
  for (const auto& body : test_support::mutations(seed, 1000)) {
    std::size_t dropped = 0;
    Result<QueryRangeAnswer> a = fail(ErrorCode::kInternal, "not read");
    ASSERT_NO_THROW(a = parseQueryRange(body, dropped)) << body;
    if (!a) {
      ++refused;
      continue;
    }
    ++parsed;
    for (const auto& s : a->series) EXPECT_EQ(s.time.size(), s.value.size()) << body;
  }
  EXPECT_GT(parsed, 50);
  EXPECT_GT(refused, 50);
  // Sound JSON out of the documented shape: a value of another type, or removed, anywhere.
  std::mt19937 rng(11);
  for (int i = 0; i < 1000; ++i) {
    auto doc = nlohmann::json::parse(seed);
    for (int e = 0; e < 1 + i % 3; ++e) test_support::mutateJson(doc, rng);
    std::size_t dropped = 0;
    Result<QueryRangeAnswer> a = fail(ErrorCode::kInternal, "not read");
    ASSERT_NO_THROW(a = parseQueryRange(doc.dump(), dropped)) << doc.dump();
    if (!a) continue;
    for (const auto& s : a->series) EXPECT_EQ(s.time.size(), s.value.size()) << doc.dump();
  }
}

// An instant query's answer out of the documented shape is read or refused, never an exception.
TEST(PrometheusAnswer, InstantAnswersOutOfShapeAreReadOrRefused) {
  const std::string seed = R"({"status":"success","warnings":["partial"],"data":{"resultType":"vector","result":[
    {"metric":{"namespace":"shop","pod":"web-1","container":"app"},"value":[1700000000.5,"0.25"]},
    {"metric":{},"value":[1700000000,"NaN"]}]}})";
  auto sound = parseInstant(seed, 200, true, "q");
  ASSERT_TRUE(sound) << sound.error().message;
  ASSERT_EQ(sound->size(), 2u);
  EXPECT_EQ((*sound)[0].labels.at("pod"), "web-1");
  EXPECT_DOUBLE_EQ((*sound)[0].value, 0.25);
  auto warned = parseInstant(seed, 200, false, "q");
  ASSERT_FALSE(warned);
  EXPECT_NE(warned.error().message.find("q: Prometheus warns that the answer may be incomplete: partial"), std::string::npos)
      << warned.error().message;
  std::mt19937 rng(13);
  int read = 0, refused = 0;
  for (int i = 0; i < 1000; ++i) {
    auto doc = nlohmann::json::parse(seed);
    for (int e = 0; e < 1 + i % 3; ++e) test_support::mutateJson(doc, rng);
    Result<std::vector<InstantSample>> a = fail(ErrorCode::kInternal, "not read");
    ASSERT_NO_THROW(a = parseInstant(doc.dump(), 200, true, "q")) << doc.dump();
    if (a) {
      ++read;
    } else {
      ++refused;
      EXPECT_TRUE(a.error().message.starts_with("q")) << a.error().message;
    }
  }
  EXPECT_GT(read, 100);
  EXPECT_GT(refused, 100);
}

}  // namespace
}  // namespace foresight::trace
