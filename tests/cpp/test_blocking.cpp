// cpp/kernels/blocking.h: the granularity convention. Named layouts, every invalid shape with its
// message, and param_index / for_each_run_piece against a brute-force per-element computation.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <string>
#include <vector>

#include "kernels/blocking.h"
#include "test_util.h"

using lowbit::kernels::BlockLayout;
using lowbit::kernels::make_block_layout;
using Shape = std::vector<int64_t>;

namespace {

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

BlockLayout layout_of(const Shape& x, const Shape& p) {
  BlockLayout L;
  const std::string err = make_block_layout(x, p, &L);
  INFO("x " << shape_str(x) << ", param " << shape_str(p) << ": " << err);
  REQUIRE(err.empty());
  return L;
}

// The parameter element of x's element `flat` (row-major), straight from the convention: pad p
// with leading ones, coordinate d of the parameter is index_d / (x_d / p_d).
int64_t brute_force_param_index(const Shape& x, Shape p, int64_t flat) {
  while (p.size() > x.size()) p.erase(p.begin());  // only leading ones can be dropped
  p.insert(p.begin(), x.size() - p.size(), 1);
  int64_t index = 0, pstride = 1;
  for (int d = static_cast<int>(x.size()) - 1; d >= 0; --d) {
    const int64_t coord = flat % x[d];
    flat /= x[d];
    index += (coord / (x[d] / p[d])) * pstride;
    pstride *= p[d];
  }
  return index;
}

// Checks every element of x against the brute force, run maximality, and that run pieces of
// arbitrary [begin, end) windows tile the window without crossing a parameter boundary.
void check_against_brute_force(const Shape& x, const Shape& p, const BlockLayout& L, lowbit_test::SplitMix64& rng) {
  INFO("x " << shape_str(x) << ", param " << shape_str(p));
  int64_t numel = 1, nparams = 1;
  for (int64_t s : x) numel *= s;
  for (int64_t s : p) nparams *= s;
  REQUIRE(L.numel == numel);
  REQUIRE(L.num_params == nparams);
  if (numel == 0) {
    REQUIRE(L.num_runs == 0);
    return;
  }
  REQUIRE(L.run_length >= 1);
  REQUIRE(L.num_runs * L.run_length == numel);
  for (int64_t e = 0; e < numel; ++e) {
    INFO("element " << e);
    REQUIRE(L.param_index(e / L.run_length) == brute_force_param_index(x, p, e));
  }
  // Runs are maximal: neighbouring runs never share a parameter element.
  for (int64_t r = 0; r + 1 < L.num_runs; ++r) REQUIRE(L.param_index(r) != L.param_index(r + 1));
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t a = rng.range(0, numel), b = rng.range(0, numel);
    const int64_t begin = std::min(a, b), end = std::max(a, b);
    int64_t pos = begin;
    lowbit::kernels::for_each_run_piece(L, begin, end, [&](int64_t param, int64_t start, int64_t count) {
      REQUIRE(start == pos);
      REQUIRE(count >= 1);
      REQUIRE(start / L.run_length == (start + count - 1) / L.run_length);  // inside one run
      for (int64_t e = start; e < start + count; ++e) REQUIRE(param == brute_force_param_index(x, p, e));
      pos += count;
    });
    REQUIRE(pos == end);
  }
}

}  // namespace

TEST_CASE("blocking: per-tensor parameters are one run", "[blocking]") {
  for (const Shape& p : {Shape{}, Shape{1}, Shape{1, 1, 1}, Shape{1, 1, 1, 1, 1}}) {
    const BlockLayout L = layout_of({2, 3, 4}, p);
    CHECK(L.numel == 24);
    CHECK(L.run_length == 24);
    CHECK(L.num_runs == 1);
    CHECK(L.num_params == 1);
    CHECK(L.per_tensor());
    CHECK(L.radix.empty());
    CHECK(L.param_index(0) == 0);
  }
}

TEST_CASE("blocking: per-channel (1 C 1 1) of NCHW", "[blocking]") {
  const BlockLayout L = layout_of({2, 3, 4, 5}, {1, 3, 1, 1});
  CHECK(L.run_length == 20);  // H·W
  CHECK(L.num_runs == 6);
  CHECK(L.num_params == 3);
  CHECK_FALSE(L.per_tensor());
  for (int64_t r = 0; r < 6; ++r) CHECK(L.param_index(r) == r % 3);
  // The [C, 1, 1] spelling (left-padded) is the same layout.
  const BlockLayout M = layout_of({2, 3, 4, 5}, {3, 1, 1});
  CHECK(M.run_length == 20);
  for (int64_t r = 0; r < 6; ++r) CHECK(M.param_index(r) == r % 3);
}

TEST_CASE("blocking: per-channel along axis 0 of a conv weight", "[blocking]") {
  const BlockLayout L = layout_of({8, 3, 3, 3}, {8, 1, 1, 1});
  CHECK(L.run_length == 27);
  CHECK(L.num_runs == 8);
  for (int64_t r = 0; r < 8; ++r) CHECK(L.param_index(r) == r);
}

TEST_CASE("blocking: groups (N K/g) of a weight (N K)", "[blocking]") {
  const BlockLayout L = layout_of({4, 12}, {4, 3});  // g = 4
  CHECK(L.run_length == 4);
  CHECK(L.num_runs == 12);
  CHECK(L.num_params == 12);
  for (int64_t r = 0; r < 12; ++r) CHECK(L.param_index(r) == r);  // groups are row-major
}

TEST_CASE("blocking: a parameter varying along the last axis gives runs of 1", "[blocking]") {
  const BlockLayout L = layout_of({3, 5}, {5});
  CHECK(L.run_length == 1);
  CHECK(L.num_runs == 15);
  for (int64_t r = 0; r < 15; ++r) CHECK(L.param_index(r) == r % 5);
  const BlockLayout full = layout_of({3, 5}, {3, 5});  // elementwise parameters
  CHECK(full.run_length == 1);
  for (int64_t r = 0; r < 15; ++r) CHECK(full.param_index(r) == r);
}

TEST_CASE("blocking: a 2-D block grid", "[blocking]") {
  const BlockLayout L = layout_of({6, 8}, {2, 4});  // blocks of 3 x 2
  CHECK(L.run_length == 2);
  CHECK(L.num_runs == 24);
  for (int64_t r = 0; r < 24; ++r) {
    const int64_t row = r / 4, col_block = r % 4;
    CHECK(L.param_index(r) == (row / 3) * 4 + col_block);
  }
}

TEST_CASE("blocking: leading ones beyond x.dim() are padding", "[blocking]") {
  const BlockLayout L = layout_of({2, 3, 4, 5}, {1, 1, 1, 3, 1, 1});
  CHECK(L.run_length == 20);
  CHECK(L.num_params == 3);
  for (int64_t r = 0; r < 6; ++r) CHECK(L.param_index(r) == r % 3);
}

TEST_CASE("blocking: 0-d input", "[blocking]") {
  for (const Shape& p : {Shape{}, Shape{1}, Shape{1, 1}}) {
    const BlockLayout L = layout_of({}, p);
    CHECK(L.numel == 1);
    CHECK(L.run_length == 1);
    CHECK(L.num_runs == 1);
    CHECK(L.param_index(0) == 0);
  }
}

TEST_CASE("blocking: empty input", "[blocking]") {
  for (const auto& [x, p] : std::vector<std::pair<Shape, Shape>>{
           {{0}, {}}, {{0}, {1}}, {{0, 3}, {1, 3}}, {{4, 0}, {2, 1}}, {{2, 0, 5}, {1, 1, 5}}}) {
    const BlockLayout L = layout_of(x, p);
    CHECK(L.numel == 0);
    CHECK(L.num_runs == 0);
    int calls = 0;
    lowbit::kernels::for_each_run_piece(L, 0, 0, [&](int64_t, int64_t, int64_t) { ++calls; });
    CHECK(calls == 0);
  }
}

TEST_CASE("blocking: every invalid shape is rejected with a message naming the dimension", "[blocking]") {
  struct Bad {
    Shape x, p;
    std::vector<std::string> must_contain;
  };
  const Bad cases[] = {
      {{4, 6}, {3, 6}, {"does not tile", "dimension 0", "is 3", "input's is 4"}},
      {{4, 6}, {4, 4}, {"does not tile", "dimension 1", "is 4", "input's is 6"}},
      {{4, 6}, {12}, {"dimension 1", "is 12", "input's is 6"}},  // larger than the dimension
      {{4, 6}, {4, 0}, {"dimension 1", "is 0"}},                 // zero-sized parameter
      {{4, 6}, {-2, 6}, {"dimension 0", "is -2"}},               // negative size
      {{0, 6}, {2, 6}, {"dimension 0", "is 2", "input's is 0"}},  // an empty dim takes only 1
      {{4, 6}, {2, 4, 6}, {"has 3 dimensions", "input has only 2"}},
      {{}, {2}, {"has 1 dimensions", "input has only 0"}},
      {{3}, {2, 1, 3}, {"has 3 dimensions", "input has only 1"}},  // non-1 leading dim can't be padding
      {{2, 3, 4, 5}, {1, 3, 3, 1}, {"dimension 2", "is 3", "input's is 4"}},
  };
  for (const Bad& b : cases) {
    BlockLayout L;
    L.numel = -7;  // a failed call must leave *out untouched
    const std::string err = make_block_layout(b.x, b.p, &L);
    INFO("x " << shape_str(b.x) << ", param " << shape_str(b.p) << " -> \"" << err << "\"");
    REQUIRE_FALSE(err.empty());
    for (const std::string& part : b.must_contain) CHECK(err.find(part) != std::string::npos);
    CHECK(L.numel == -7);
  }
}

TEST_CASE("blocking: param_index equals a brute-force per-element index on random shapes", "[blocking]") {
  lowbit_test::SplitMix64 rng(77);
  const int64_t sizes[] = {1, 2, 3, 4, 6, 8, 12};
  for (int trial = 0; trial < 400; ++trial) {
    const int nd = static_cast<int>(rng.range(0, 5));
    Shape x(nd), p(nd);
    for (int d = 0; d < nd; ++d) {
      x[d] = sizes[rng.range(0, nd >= 4 ? 4 : 6)];  // at most 6^5 elements
      if (trial % 10 == 0 && rng.range(0, 3) == 0) x[d] = 0;  // some empty inputs
      // A random divisor of x[d] (1 for an empty dimension).
      std::vector<int64_t> divisors;
      for (int64_t k = 1; k <= std::max<int64_t>(x[d], 1); ++k) {
        if (x[d] == 0 ? k == 1 : x[d] % k == 0) divisors.push_back(k);
      }
      p[d] = divisors[rng.range(0, static_cast<int64_t>(divisors.size()) - 1)];
    }
    // Drop some leading ones of p (left padding) or add some.
    while (!p.empty() && p.front() == 1 && rng.range(0, 1) == 0) p.erase(p.begin());
    if (rng.range(0, 4) == 0) p.insert(p.begin(), 1);
    const BlockLayout L = layout_of(x, p);
    check_against_brute_force(x, p, L, rng);
  }
}
