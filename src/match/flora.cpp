#include "foresight/match/flora.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "csv.h"
#include "foresight/core/files.h"

namespace foresight::match {
namespace fs = std::filesystem;

Result<ResourceTrace> readPsrecord(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return fail(ErrorCode::kNotFound, "{}: cannot open", file.string());
  ResourceTrace t;
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    line = detail::trim(line);
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    double v[4];
    if (!(ss >> v[0] >> v[1] >> v[2] >> v[3]))
      return fail(ErrorCode::kParse, "{}:{}: expected elapsed, CPU %, real MB, virtual MB",
                  file.string(), n);
    t.elapsed_s.push_back(v[0]);
    t.cpu_percent.push_back(v[1]);
    t.memory_mb.push_back(v[2]);
    t.virtual_mb.push_back(v[3]);
  }
  if (t.elapsed_s.empty()) return fail(ErrorCode::kParse, "{}: no samples", file.string());
  return t;
}

namespace {

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

// Least-squares slope of log y on log x: how a quantity scales with input size.
double logSlope(const std::vector<double>& x, const std::vector<double>& y) {
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < x.size(); ++i) mx += std::log(x[i]), my += std::log(y[i]);
  mx /= x.size();
  my /= y.size();
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sxy += (std::log(x[i]) - mx) * (std::log(y[i]) - my);
    sxx += (std::log(x[i]) - mx) * (std::log(x[i]) - mx);
  }
  return sxx > 0 ? sxy / sxx : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

std::map<std::string, double> fingerprintOf(const ResourceTrace& t) {
  // The first sample is psrecord's reading before the process did anything.
  const std::size_t from = t.cpu_percent.size() > 1 ? 1 : 0;
  std::vector<double> cpu(t.cpu_percent.begin() + from, t.cpu_percent.end());
  for (double& c : cpu) c /= 100;  // cores
  std::vector<double> mem(t.memory_mb.begin() + from, t.memory_mb.end());
  const double cpu_mean = std::accumulate(cpu.begin(), cpu.end(), 0.0) / cpu.size();
  double var = 0;
  for (double c : cpu) var += (c - cpu_mean) * (c - cpu_mean);
  const double cpu_sd = std::sqrt(var / cpu.size());
  const double mem_peak = *std::max_element(mem.begin(), mem.end());
  const std::vector<double> first_half(mem.begin(), mem.begin() + (mem.size() + 1) / 2);
  return {
      {"duration_s", t.elapsed_s.back()},
      {"cpu_mean_cores", cpu_mean},
      {"cpu_p50_cores", quantile(cpu, 0.5)},
      {"cpu_p90_cores", quantile(cpu, 0.9)},
      {"cpu_peak_cores", *std::max_element(cpu.begin(), cpu.end())},
      {"cpu_burstiness", cpu_mean > 0 ? cpu_sd / cpu_mean : 0},
      {"memory_mean_mb", std::accumulate(mem.begin(), mem.end(), 0.0) / mem.size()},
      {"memory_p90_mb", quantile(mem, 0.9)},
      {"memory_peak_mb", mem_peak},
      {"memory_early_share", mem_peak > 0 ? *std::max_element(first_half.begin(), first_half.end()) / mem_peak : 0},
      {"virtual_peak_mb", *std::max_element(t.virtual_mb.begin(), t.virtual_mb.end())},
  };
}

Status convertFlora(const fs::path& flora_dir, const fs::path& out_dir, const FloraPrices& prices) {
  if (prices.vcpu_hour.has_value() != prices.gb_hour.has_value())
    return fail(ErrorCode::kInvalidArgument, "give both the vCPU-hour and the GB-hour price, or neither");
  const fs::path runtimes = flora_dir / "gcp_runtime_data" / "gcp_dataproc.csv";
  auto t = detail::readCsv(runtimes);
  if (!t) return tl::unexpected(t.error());
  for (const char* need : {"algorithm", "dataset_size_bytes", "vcpu_per_node", "memory_gb_per_node",
                           "scaleout", "runtime"})
    if (t->column(need) == std::string::npos)
      return fail(ErrorCode::kParse, "{}:1: no `{}` column", t->file, need);
  const auto c_alg = t->column("algorithm"), c_size = t->column("dataset_size_bytes"),
             c_vcpu = t->column("vcpu_per_node"), c_mem = t->column("memory_gb_per_node"),
             c_nodes = t->column("scaleout"), c_rt = t->column("runtime");

  // Local profiles: <Algorithm>_<records>.txt; the algorithm name matches case-insensitively.
  std::map<std::string, std::vector<std::pair<double, fs::path>>> profiles;
  const fs::path prof_dir = flora_dir / "profiling_data" / "psrecord_monitoring";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(prof_dir, ec)) {
    const auto stem = entry.path().stem().string();
    const auto us = stem.rfind('_');
    double size = 0;
    if (entry.path().extension() != ".txt" || us == std::string::npos ||
        !detail::looksNumeric(stem.substr(us + 1), size))
      continue;
    std::string alg = stem.substr(0, us);
    std::transform(alg.begin(), alg.end(), alg.begin(), ::tolower);
    profiles[alg].push_back({size, entry.path()});
  }
  if (ec) return fail(ErrorCode::kNotFound, "{}: {}", prof_dir.string(), ec.message());

  std::map<std::string, std::map<std::string, double>> alg_fp;
  for (auto& [alg, files] : profiles) {
    std::sort(files.begin(), files.end());
    std::vector<double> sizes, durations, peaks;
    std::map<std::string, double> largest;
    for (const auto& [size, file] : files) {
      auto trace = readPsrecord(file);
      if (!trace) return tl::unexpected(trace.error());
      largest = fingerprintOf(*trace);
      sizes.push_back(size);
      durations.push_back(std::max(largest["duration_s"], 1.0));
      peaks.push_back(std::max(largest["memory_peak_mb"], 1.0));
    }
    if (files.size() >= 2) {
      largest["duration_scaling"] = logSlope(sizes, durations);
      largest["memory_scaling"] = logSlope(sizes, peaks);
    }
    alg_fp[alg] = largest;
  }

  std::string envs = "env,nodes,vcpu_per_node,memory_gb_per_node";
  if (prices.vcpu_hour) envs += ",price_per_hour";
  envs += "\n";
  std::string runs = "workload,env,completed,runtime_s,app,input_bytes\n";
  std::set<std::string> env_seen;
  std::map<std::string, double> workload_bytes;
  std::map<std::string, std::string> workload_alg;
  for (std::size_t r = 0; r < t->rows.size(); ++r) {
    const auto& row = t->rows[r];
    double num[4];
    const std::size_t cols[4] = {c_vcpu, c_mem, c_nodes, c_rt};
    for (int i = 0; i < 4; ++i) {
      auto v = detail::parseNumber(row[cols[i]], *t, r, t->header[cols[i]]);
      if (!v) return tl::unexpected(v.error());
      num[i] = *v;
    }
    const std::string env = fmt::format("{}x{}vcpu-{}gb", row[c_nodes], row[c_vcpu], row[c_mem]);
    if (env_seen.insert(env).second) {
      envs += fmt::format("{},{},{},{}", env, row[c_nodes], row[c_vcpu], row[c_mem]);
      if (prices.vcpu_hour)
        envs += fmt::format(",{:.6f}", num[2] * (num[0] * *prices.vcpu_hour + num[1] * *prices.gb_hour));
      envs += "\n";
    }
    std::string alg = row[c_alg];
    std::transform(alg.begin(), alg.end(), alg.begin(), ::tolower);
    const std::string workload = alg + "_" + row[c_size];
    double bytes = 0;
    if (!detail::looksNumeric(row[c_size], bytes))
      return fail(ErrorCode::kParse, "{}:{}: dataset_size_bytes '{}' is not a number", t->file,
                  t->lines[r], row[c_size]);
    workload_bytes[workload] = bytes;
    workload_alg[workload] = alg;
    runs += fmt::format("{},{},1,{},{},{}\n", workload, env, row[c_rt], alg, row[c_size]);
  }

  std::set<std::string> fp_names;
  for (const auto& [alg, fp] : alg_fp)
    for (const auto& [k, v] : fp) fp_names.insert(k);
  std::string fps = "workload,log10_input_bytes";
  for (const auto& k : fp_names) fps += "," + k;
  fps += "\n";
  for (const auto& [w, bytes] : workload_bytes) {
    fps += fmt::format("{},{:.6f}", w, std::log10(bytes));
    auto it = alg_fp.find(workload_alg[w]);
    for (const auto& k : fp_names) {
      fps += ",";
      if (it != alg_fp.end() && it->second.contains(k) && std::isfinite(it->second.at(k)))
        fps += fmt::format("{:.6g}", it->second.at(k));
    }
    fps += "\n";
  }
  fs::create_directories(out_dir, ec);
  if (ec) return fail(ErrorCode::kIo, "{}: {}", out_dir.string(), ec.message());
  if (auto s = writeFileAtomically(out_dir / "environments.csv", envs); !s) return s;
  if (auto s = writeFileAtomically(out_dir / "runs.csv", runs); !s) return s;
  return writeFileAtomically(out_dir / "fingerprints.csv", fps);
}

}  // namespace foresight::match
