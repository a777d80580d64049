#include "foresight/core/registry.h"

#include <gtest/gtest.h>

namespace foresight {
namespace {

struct Shape {
  virtual ~Shape() = default;
  virtual int sides() const = 0;
};
struct Square : Shape {
  int sides() const override { return 4; }
};

TEST(Registry, CreatesByName) {
  Registry<Shape> r("shape");
  r.add("square", "four sides", [] { return std::make_unique<Square>(); });
  auto s = r.create("square");
  ASSERT_TRUE(s);
  EXPECT_EQ((*s)->sides(), 4);
  EXPECT_EQ(r.summary("square"), "four sides");
}

TEST(Registry, UnknownNameListsKnownOnes) {
  Registry<Shape> r("shape");
  r.add("square", "", [] { return std::make_unique<Square>(); });
  r.add("circle", "", [] { return std::make_unique<Square>(); });
  auto s = r.create("triangle");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(s.error().message, "unknown shape 'triangle' (known: circle, square)");
}

TEST(Registry, DuplicateNameIsAProgrammingError) {
  Registry<Shape> r("shape");
  r.add("square", "", [] { return std::make_unique<Square>(); });
  EXPECT_THROW(r.add("square", "", [] { return std::make_unique<Square>(); }), std::logic_error);
}

TEST(Registry, OptionsOutsideAnEntrysKeysAreRefused) {
  using Options = std::map<std::string, std::string>;
  Registry<Shape, const Options&> r("shape");
  r.add("square", "", [](const Options&) { return std::make_unique<Square>(); }, {"side"});
  r.add("dot", "", [](const Options&) { return std::make_unique<Square>(); });
  EXPECT_TRUE(r.create("square", {{"side", "2"}}));
  auto typo = r.create("square", {{"sied", "2"}});
  ASSERT_FALSE(typo);
  EXPECT_EQ(typo.error().message, "shape 'square' has no option 'sied' (its options: side)");
  auto none = r.create("dot", {{"side", "2"}});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message, "shape 'dot' has no option 'side' (its options: none)");
  // Options held in a struct's `values` map (backend options) are checked the same way.
  struct Held {
    Options values;
  };
  Registry<Shape, const Held&> h("shape");
  h.add("square", "", [](const Held&) { return std::make_unique<Square>(); }, {"side"});
  EXPECT_FALSE(h.create("square", Held{{{"sied", "2"}}}));
  EXPECT_TRUE(h.create("square", Held{{{"side", "2"}}}));
}

}  // namespace
}  // namespace foresight
