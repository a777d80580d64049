#pragma once
// Registry of named factories. Implementations are added by an explicit registerBuiltins() call
// from the app, never by static initialisers (the linker drops those from static libraries).
//
// Thread-safety: fill it once at start-up; concurrent lookups afterwards are safe.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "foresight/core/result.h"

namespace foresight {

template <typename Product, typename... Args>
class Registry {
 public:
  using Factory = std::function<std::unique_ptr<Product>(Args...)>;

  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  // Adding a name twice is a programming error.
  void add(const std::string& name, std::string summary, Factory factory) {
    auto [it, inserted] = entries_.emplace(name, Entry{std::move(summary), std::move(factory)});
    if (!inserted) throw std::logic_error(kind_ + " '" + name + "' registered twice");
  }

  Result<std::unique_ptr<Product>> create(const std::string& name, Args... args) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      return fail(ErrorCode::kNotFound, "unknown {} '{}' (known: {})", kind_, name,
                  fmt::join(names(), ", "));
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
  };
  std::string kind_;
  std::map<std::string, Entry> entries_;
};

}  // namespace foresight
