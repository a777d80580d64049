#pragma once
// Registry of named factories. Implementations are added by an explicit registerBuiltins() call
// from the app, never by static initialisers (the linker drops those from static libraries).
//
// Thread-safety: fill it once at start-up; concurrent lookups afterwards are safe.

#include <algorithm>
#include <concepts>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "foresight/core/result.h"

namespace foresight {

template <typename Product, typename... Args>
class Registry {
 public:
  using Factory = std::function<std::unique_ptr<Product>(Args...)>;

  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  // Adding a name twice is a programming error. `options`: the keys its factory reads when the
  // argument is a key=value map (policy and backend options); create() refuses any other key, so a
  // misspelt option fails instead of silently taking the default.
  void add(const std::string& name, std::string summary, Factory factory,
           std::vector<std::string> options = {}) {
    auto [it, inserted] =
        entries_.emplace(name, Entry{std::move(summary), std::move(factory), std::move(options)});
    if (!inserted) throw std::logic_error(kind_ + " '" + name + "' registered twice");
  }

  Result<std::unique_ptr<Product>> create(const std::string& name, Args... args) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      return fail(ErrorCode::kNotFound, "unknown {} '{}' (known: {})", kind_, name,
                  fmt::join(names(), ", "));
    }
    if constexpr (sizeof...(Args) == 1) {
      const auto* given = optionMap(args...);
      if (given)
        for (const auto& [key, value] : *given)
          if (std::find(it->second.options.begin(), it->second.options.end(), key) ==
              it->second.options.end())
            return fail(ErrorCode::kInvalidArgument, "{} '{}' has no option '{}' (its options: {})",
                        kind_, name, key,
                        it->second.options.empty() ? std::string("none")
                                                   : fmt::format("{}", fmt::join(it->second.options, ", ")));
    }
    return it->second.factory(std::forward<Args>(args)...);
  }

  bool contains(const std::string& name) const { return entries_.count(name) != 0; }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, entry] : entries_) out.push_back(name);
    return out;
  }

  const std::string& summary(const std::string& name) const { return entries_.at(name).summary; }

 private:
  struct Entry {
    std::string summary;
    Factory factory;
    std::vector<std::string> options;
  };
  using OptionMap = std::map<std::string, std::string>;
  template <typename A>
  static const OptionMap* optionMap(const A& a) {
    if constexpr (std::is_same_v<A, OptionMap>) return &a;
    else if constexpr (requires { { a.values } -> std::convertible_to<const OptionMap&>; }) return &a.values;
    else return nullptr;
  }
  std::string kind_;
  std::map<std::string, Entry> entries_;
};

}  // namespace foresight
