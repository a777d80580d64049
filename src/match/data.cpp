#include "foresight/match/data.h"

#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include <yaml-cpp/yaml.h>

#include "csv.h"
#include "foresight/match/store.h"

namespace foresight::match {
namespace fs = std::filesystem;
using detail::CsvTable;
using detail::looksNumeric;

const Environment* EnvironmentCatalog::find(const std::string& id) const {
  for (const auto& e : environments)
    if (e.id == id) return &e;
  return nullptr;
}

std::optional<double> EnvironmentCatalog::price(const Environment& env,
                                                const std::string& option) const {
  auto it = env.prices.find(option);
  if (it == env.prices.end()) return std::nullopt;
  return it->second;
}

namespace {

void addFeature(Environment& env, const std::string& key, const std::string& value) {
  if (value.empty()) return;  // unknown: the model treats it as missing
  double v = 0;
  if (looksNumeric(value, v))
    env.numbers[key] = v;
  else
    env.labels[key] = value;
}

Status checkUniqueIds(const EnvironmentCatalog& c, const std::string& file) {
  std::set<std::string> seen;
  for (const auto& e : c.environments)
    if (!seen.insert(e.id).second)
      return fail(ErrorCode::kParse, "{}: environment '{}' listed twice", file, e.id);
  if (c.environments.empty()) return fail(ErrorCode::kParse, "{}: no environments", file);
  return ok();
}

}  // namespace

Result<EnvironmentCatalog> readEnvironmentsCsv(const fs::path& file) {
  auto t = detail::readCsv(file);
  if (!t) return tl::unexpected(t.error());
  const std::size_t id_col = t->column("env");
  if (id_col == std::string::npos)
    return fail(ErrorCode::kParse, "{}:1: no `env` column", file.string());
  EnvironmentCatalog catalog;
  const std::string price_prefix = "price_per_hour_";
  for (std::size_t r = 0; r < t->rows.size(); ++r) {
    Environment env;
    env.id = t->rows[r][id_col];
    if (env.id.empty()) return fail(ErrorCode::kParse, "{}:{}: empty env id", t->file, t->lines[r]);
    for (std::size_t c = 0; c < t->header.size(); ++c) {
      const auto& name = t->header[c];
      const auto& cell = t->rows[r][c];
      if (c == id_col) continue;
      if (name == "price_per_hour" || name.starts_with(price_prefix)) {
        if (cell.empty()) continue;
        auto v = detail::parseNumber(cell, *t, r, name);
        if (!v) return tl::unexpected(v.error());
        if (*v < 0)
          return fail(ErrorCode::kParse, "{}:{}: column '{}': a price cannot be negative: '{}'",
                      t->file, t->lines[r], name, cell);
        env.prices[name == "price_per_hour" ? kOnDemand : name.substr(price_prefix.size())] = *v;
      } else {
        addFeature(env, name, cell);
      }
    }
    catalog.environments.push_back(std::move(env));
  }
  if (auto s = checkUniqueIds(catalog, file.string()); !s) return tl::unexpected(s.error());
  return catalog;
}

Result<EnvironmentCatalog> readEnvironmentsYaml(const fs::path& file) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file.string());
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::kParse, "{}:{}: {}", file.string(), e.mark.line + 1, e.msg);
  }
  // operator[] throws on a document that is not a mapping (a lone value, a list).
  const YAML::Node list = root.IsMap() ? root["environments"] : YAML::Node();
  if (!list || !list.IsSequence())
    return fail(ErrorCode::kParse, "{}: expected a list under `environments`", file.string());
  EnvironmentCatalog catalog;
  // Ids and keys must be plain values: as<std::string>() throws on a list or a map.
  auto notScalar = [&](const YAML::Node& n, const std::string& what) {
    return fail(ErrorCode::kParse, "{}:{}: {} must be a plain value, not a list or a map",
                file.string(), n.Mark().line + 1, what);
  };
  try {
    for (const auto& node : list) {
      const int line = node.Mark().line + 1;
      if (!node.IsMap() || !node["id"])
        return fail(ErrorCode::kParse, "{}:{}: an environment needs an `id`", file.string(), line);
      Environment env;
      if (!node["id"].IsScalar()) return notScalar(node["id"], "`id`");
      env.id = node["id"].as<std::string>();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) return notScalar(kv.first, fmt::format("a key of '{}'", env.id));
        const auto key = kv.first.as<std::string>();
        if (key == "id") continue;
        if (kv.second.IsScalar()) {
          addFeature(env, key, kv.second.as<std::string>());
          continue;
        }
        if (!kv.second.IsMap())
          return fail(ErrorCode::kParse, "{}:{}: `{}` of '{}' must be a map or a value",
                      file.string(), kv.second.Mark().line + 1, key, env.id);
        for (const auto& inner : kv.second) {
          if (!inner.first.IsScalar())
            return notScalar(inner.first, fmt::format("a key under `{}` of '{}'", key, env.id));
          const auto name = inner.first.as<std::string>();
          if (!inner.second.IsScalar())
            return fail(ErrorCode::kParse, "{}:{}: `{}.{}` of '{}' must be a value", file.string(),
                        inner.second.Mark().line + 1, key, name, env.id);
          const auto value = inner.second.as<std::string>();
          if (key == "prices") {
            double v = 0;
            if (!looksNumeric(value, v) || v < 0)
              return fail(ErrorCode::kParse,
                          "{}:{}: price `{}` of '{}' is not a number >= 0: '{}'", file.string(),
                          inner.second.Mark().line + 1, name, env.id, value);
            env.prices[name] = v;
          } else {
            addFeature(env, name, value);
          }
        }
      }
      catalog.environments.push_back(std::move(env));
    }
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::kParse, "{}:{}: {}", file.string(), e.mark.line + 1, e.msg);
  }
  if (auto s = checkUniqueIds(catalog, file.string()); !s) return tl::unexpected(s.error());
  return catalog;
}

Status joinInstanceCatalog(EnvironmentCatalog& catalog, const fs::path& file,
                           const std::string& key) {
  auto t = detail::readCsv(file);
  if (!t) return tl::unexpected(t.error());
  const std::size_t key_col = t->column(key);
  if (key_col == std::string::npos)
    return fail(ErrorCode::kParse, "{}:1: no `{}` column to join on", file.string(), key);
  std::map<std::string, std::size_t> by_key;
  for (std::size_t r = 0; r < t->rows.size(); ++r) by_key[t->rows[r][key_col]] = r;
  const std::string price_suffix = "_usd_per_hour";
  for (auto& env : catalog.environments) {
    auto label = env.labels.find(key);
    if (label == env.labels.end()) continue;
    auto row = by_key.find(label->second);
    if (row == by_key.end())
      return fail(ErrorCode::kNotFound, "{}: no instance type '{}' (needed by environment '{}')",
                  file.string(), label->second, env.id);
    const auto nodes = env.numbers.contains("nodes") ? env.numbers.at("nodes") : 1.0;
    for (std::size_t c = 0; c < t->header.size(); ++c) {
      if (c == key_col) continue;
      const auto& name = t->header[c];
      const auto& cell = t->rows[row->second][c];
      if (name.ends_with(price_suffix)) {
        double v = 0;
        if (!looksNumeric(cell, v)) continue;
        if (v < 0)
          return fail(ErrorCode::kParse, "{}:{}: column '{}': a price cannot be negative: '{}'",
                      t->file, t->lines[row->second], name, cell);
        auto option = name.substr(0, name.size() - price_suffix.size());
        if (option == "ondemand") option = kOnDemand;
        env.prices.emplace(option, v * nodes);
      } else if (!env.numbers.contains(name) && !env.labels.contains(name)) {
        addFeature(env, name, cell);
      }
    }
  }
  return ok();
}

Result<RunHistory> readRunsCsv(const fs::path& file) {
  auto t = detail::readCsv(file);
  if (!t) return tl::unexpected(t.error());
  for (const char* need : {"workload", "env", "completed", "runtime_s"})
    if (t->column(need) == std::string::npos)
      return fail(ErrorCode::kParse, "{}:1: no `{}` column", file.string(), need);
  const auto w = t->column("workload"), e = t->column("env"), c = t->column("completed"),
             rt = t->column("runtime_s"), cost = t->column("cost"),
             thr = t->column("throughput");
  RunHistory h;
  for (std::size_t r = 0; r < t->rows.size(); ++r) {
    const auto& row = t->rows[r];
    Run run;
    run.workload = row[w];
    run.env = row[e];
    run.line = t->lines[r];
    if (run.workload.empty() || run.env.empty())
      return fail(ErrorCode::kParse, "{}:{}: empty workload or env", t->file, t->lines[r]);
    if (row[c] != "0" && row[c] != "1")
      return fail(ErrorCode::kParse, "{}:{}: completed must be 0 or 1, not '{}'", t->file,
                  t->lines[r], row[c]);
    run.completed = row[c] == "1";
    if (!row[rt].empty()) {
      auto v = detail::parseNumber(row[rt], *t, r, "runtime_s");
      if (!v) return tl::unexpected(v.error());
      run.runtime_s = *v;
    } else if (run.completed) {
      return fail(ErrorCode::kParse, "{}:{}: a completed run needs runtime_s", t->file, t->lines[r]);
    } else {
      run.runtime_s = std::numeric_limits<double>::quiet_NaN();  // unknown, not free
    }
    // Otherwise it would silently count as a failed run.
    if (run.completed && !(run.runtime_s > 0))
      return fail(ErrorCode::kParse, "{}:{}: a completed run needs runtime_s > 0, not '{}'",
                  t->file, t->lines[r], row[rt]);
    if (run.runtime_s < 0)
      return fail(ErrorCode::kParse, "{}:{}: runtime_s cannot be negative: '{}'", t->file,
                  t->lines[r], row[rt]);
    if (cost != std::string::npos && !row[cost].empty()) {
      auto v = detail::parseNumber(row[cost], *t, r, "cost");
      if (!v) return tl::unexpected(v.error());
      if (*v < 0)
        return fail(ErrorCode::kParse, "{}:{}: cost cannot be negative: '{}'", t->file,
                    t->lines[r], row[cost]);
      run.cost = *v;
    }
    if (thr != std::string::npos && !row[thr].empty()) {
      auto v = detail::parseNumber(row[thr], *t, r, "throughput");
      if (!v) return tl::unexpected(v.error());
      run.throughput = *v;
    }
    // Extra columns describe the workload (e.g. its `app`, which --group-by holds out together):
    // one value per workload, or a fold could train on part of a group it holds out.
    auto& info = h.workload_info[run.workload];
    for (std::size_t col = 0; col < t->header.size(); ++col) {
      if (col == w || col == e || col == c || col == rt || col == cost || col == thr) continue;
      auto [it, added] = info.emplace(t->header[col], row[col]);
      if (!added && it->second != row[col])
        return fail(ErrorCode::kParse,
                    "{}:{}: workload '{}' has {} '{}' here and '{}' on an earlier line; a "
                    "workload's extra columns must agree",
                    t->file, t->lines[r], run.workload, t->header[col], row[col], it->second);
    }
    h.runs.push_back(std::move(run));
  }
  return h;
}

Status readFingerprintsCsv(const fs::path& file, RunHistory& history) {
  auto t = detail::readCsv(file);
  if (!t) return tl::unexpected(t.error());
  const auto w = t->column("workload");
  if (w == std::string::npos) return fail(ErrorCode::kParse, "{}:1: no `workload` column", t->file);
  for (std::size_t r = 0; r < t->rows.size(); ++r) {
    auto& fp = history.fingerprints[t->rows[r][w]];
    for (std::size_t c = 0; c < t->header.size(); ++c) {
      if (c == w || t->rows[r][c].empty()) continue;
      auto v = detail::parseNumber(t->rows[r][c], *t, r, t->header[c]);
      if (!v) return tl::unexpected(v.error());
      fp[t->header[c]] = *v;
    }
  }
  return ok();
}

Status readFingerprintsJsonl(const fs::path& file, RunHistory& history) {
  std::ifstream in(file);
  if (!in) return fail(ErrorCode::kIo, "{}: cannot open", file.string());
  std::map<std::string, std::map<std::string, double>> latest;
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return fail(ErrorCode::kParse, "{}:{}: not a JSON object", file.string(), n);
    if (!j.contains("workload") || !j["workload"].is_string() || !j.contains("features") ||
        !j["features"].is_object())
      return fail(ErrorCode::kParse, "{}:{}: needs a string `workload` and an object `features`",
                  file.string(), n);
    auto& fp = latest[j["workload"].get<std::string>()];
    fp.clear();  // a later fingerprint replaces the whole earlier one
    for (const auto& [k, v] : j["features"].items()) {
      if (v.is_null()) continue;
      if (!v.is_number())
        return fail(ErrorCode::kParse, "{}:{}: feature `{}` is not a number", file.string(), n, k);
      fp[k] = v.get<double>();
    }
  }
  for (auto& [w, fp] : latest) history.fingerprints[w].merge(fp);
  return ok();
}

Result<MatchData> loadMatchFolder(const fs::path& dir, const LoadOptions& options) {
  MatchData data;
  Result<EnvironmentCatalog> catalog = fail(ErrorCode::kNotFound,
      "{}: no environments.csv or environments.yaml", dir.string());
  if (fs::exists(dir / "environments.csv"))
    catalog = readEnvironmentsCsv(dir / "environments.csv");
  else if (fs::exists(dir / "environments.yaml"))
    catalog = readEnvironmentsYaml(dir / "environments.yaml");
  if (!catalog) return tl::unexpected(catalog.error());
  data.catalog = std::move(*catalog);
  if (!options.instance_catalog.empty())
    if (auto s = joinInstanceCatalog(data.catalog, options.instance_catalog); !s)
      return tl::unexpected(s.error());

  const bool has_csv = fs::exists(dir / "runs.csv");
  fs::path db = options.history_db;
  if (db.empty() && fs::exists(dir / "history.sqlite")) db = dir / "history.sqlite";
  if (!has_csv && db.empty())
    return fail(ErrorCode::kNotFound, "{}: no runs.csv or history.sqlite", dir.string());
  if (has_csv) {
    auto h = readRunsCsv(dir / "runs.csv");
    if (!h) return tl::unexpected(h.error());
    data.history = std::move(*h);
    for (std::size_t i = 0; i < data.history.runs.size(); ++i)
      if (!data.catalog.find(data.history.runs[i].env))
        return fail(ErrorCode::kParse, "{}:{}: unknown environment '{}'",
                    (dir / "runs.csv").string(), data.history.runs[i].line, data.history.runs[i].env);
  }
  if (!db.empty()) {
    // Read-only: a reader must not create a missing store or add tables to another database.
    auto store = RunStore::open(db, RunStore::Mode::kReadOnly);
    if (!store) return tl::unexpected(store.error());
    auto h = store->load();
    if (!h) return tl::unexpected(h.error());
    for (auto& run : h->runs) {
      if (!data.catalog.find(run.env))
        return fail(ErrorCode::kParse, "{}: run of '{}' names unknown environment '{}'",
                    db.string(), run.workload, run.env);
      if ((run.completed && !(run.runtime_s > 0)) || run.runtime_s < 0)
        return fail(ErrorCode::kParse, "{}: run of '{}' on '{}': {} run with runtime_s {}",
                    db.string(), run.workload, run.env,
                    run.completed ? "a completed" : "a failed", run.runtime_s);
      data.history.runs.push_back(std::move(run));
    }
    for (auto& [w, fp] : h->fingerprints) data.history.fingerprints[w].merge(fp);
    for (auto& [w, info] : h->workload_info) data.history.workload_info[w].merge(info);
  }
  if (fs::exists(dir / "fingerprints.csv"))
    if (auto s = readFingerprintsCsv(dir / "fingerprints.csv", data.history); !s)
      return tl::unexpected(s.error());
  if (fs::exists(dir / "fingerprints.jsonl"))
    if (auto s = readFingerprintsJsonl(dir / "fingerprints.jsonl", data.history); !s)
      return tl::unexpected(s.error());
  return data;
}

}  // namespace foresight::match
