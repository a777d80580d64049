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

}  // namespace
}  // namespace foresight
