// Deterministic mutations of a valid input, for tests that a parser refuses what it cannot read
// (an error naming its origin) instead of crashing, throwing or reading out of bounds (the
// sanitizer build catches the last). Not a fuzzer: a fixed seed, so a failure reproduces.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

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

}  // namespace foresight::test_support
