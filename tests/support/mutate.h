// Deterministic mutations of a valid input, for tests that a parser refuses what it cannot read
// (an error naming its origin) instead of crashing, throwing or reading out of bounds (the
// sanitizer build catches the last). Not a fuzzer: a fixed seed, so a failure reproduces.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace foresight::test_support {

// `count` variants of `seed`, each with 1 to 4 edits: a byte replaced (by a random byte or one of
// the separators a text format cares about), a byte inserted or deleted, a span duplicated or cut
// short, the whole truncated.
inline std::vector<std::string> mutations(const std::string& seed, int count, std::uint32_t rng_seed = 1) {
  static constexpr char kSpecialChars[] = ",;\t\n\r\"':-+.eE0123456789 {}[]#\\\0\xff";
  static const std::string kSpecial(kSpecialChars, sizeof kSpecialChars - 1);  // with the NUL
  std::mt19937 rng(rng_seed);
  auto pick = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n == 0 ? 0 : n - 1)(rng); };
  auto byte = [&] {
    return rng() % 2 ? static_cast<char>(rng() & 0xff) : kSpecial[pick(kSpecial.size())];
  };
  std::vector<std::string> out;
  out.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    std::string s = seed;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = pick(s.size() + 1);
      switch (rng() % 6) {
        case 0:
          if (at < s.size()) s[at] = byte();
          break;
        case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), byte()); break;
        case 2:
          if (at < s.size()) s.erase(at, 1);
          break;
        case 3: {  // a span repeated in place
          const std::size_t len = std::min<std::size_t>(1 + pick(64), s.size() - std::min(at, s.size()));
          s.insert(at, s.substr(at, len));
          break;
        }
        case 4:  // a span cut out
          if (at < s.size()) s.erase(at, 1 + pick(64));
          break;
        default: s.resize(at); break;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

// One structural edit of a JSON document, as a peer that does not follow the documented shape
// might send: a value anywhere replaced by one of another type, or removed from its object or
// array. Byte edits of JSON mostly make it unparseable; these reach the code behind the parser.
inline void mutateJson(nlohmann::json& doc, std::mt19937& rng) {
  struct Place {
    nlohmann::json* parent;  // nullptr: the document itself
    nlohmann::json* node;
    std::string key;
    std::size_t index;
  };
  std::vector<Place> places{{nullptr, &doc, "", 0}};
  for (std::size_t i = 0; i < places.size(); ++i) {
    nlohmann::json& n = *places[i].node;
    if (n.is_object())
      for (auto it = n.begin(); it != n.end(); ++it) places.push_back({&n, &it.value(), it.key(), 0});
    else if (n.is_array())
      for (std::size_t k = 0; k < n.size(); ++k) places.push_back({&n, &n[k], "", k});
  }
  const Place& p = places[std::uniform_int_distribution<std::size_t>(0, places.size() - 1)(rng)];
  const nlohmann::json others[] = {nullptr, 0, -1, 1e308, "x", "", nlohmann::json::array(), nlohmann::json::object(), true};
  if (p.parent && rng() % 4 == 0) {
    if (p.parent->is_object()) p.parent->erase(p.key);
    else p.parent->erase(p.index);
    return;
  }
  *p.node = others[rng() % std::size(others)];
}

}  // namespace foresight::test_support
