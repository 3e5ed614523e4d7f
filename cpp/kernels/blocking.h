// The one granularity convention of lowbit (DESIGN "Op conventions"): a parameter tensor's shape,
// left-padded with ones to x.dim(), divides x.shape dimension by dimension, and each parameter
// element covers one block of x.
//
// For a contiguous x this splits into *runs*: maximal stretches of consecutive elements that
// share one parameter element. With k the innermost dimension whose parameter size is > 1,
//   run_length = (x.size(k) / p.size(k)) · prod_{d > k} x.size(d)
// (per-tensor: one run of numel; per-channel [1, C, 1, 1] of NCHW: runs of H·W; groups [N, K/g]
// of [N, K]: runs of g). Kernels process one run at a time with scalar parameters.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit::kernels {

struct BlockLayout {
  int64_t numel = 0;
  int64_t run_length = 0;  // >= 1 when numel > 0
  int64_t num_runs = 0;
  int64_t num_params = 1;
  // Mixed-radix decomposition of a run index into parameter coordinates, innermost first:
  // coordinate c_j = (r % radix[j]) / block[j], param index += c_j · param_stride[j].
  std::vector<int64_t> radix, block, param_stride;

  int64_t param_index(int64_t run) const {
    int64_t index = 0;
    for (size_t j = 0; j < radix.size(); ++j) {
      const int64_t coord = run % radix[j];
      run /= radix[j];
      index += (coord / block[j]) * param_stride[j];
    }
    return index;
  }

  bool per_tensor() const { return num_params == 1; }
};

// Builds the layout of x (sizes x_sizes) against parameters of shape p_sizes (p_sizes.size() <=
// x_sizes.size(); padded with leading ones here). Returns an empty string on success, or a
// message naming the first dimension that does not tile.
inline std::string make_block_layout(const std::vector<int64_t>& x_sizes,
                                     std::vector<int64_t> p_sizes, BlockLayout* out) {
  const size_t nd = x_sizes.size();
  // Leading ones beyond x.dim() are padding too (a [1] scale for a 0-d x is per-tensor).
  while (p_sizes.size() > nd && p_sizes.front() == 1) p_sizes.erase(p_sizes.begin());
  if (p_sizes.size() > nd) {
    return "has " + std::to_string(p_sizes.size()) + " dimensions but the input has only " +
           std::to_string(nd);
  }
  p_sizes.insert(p_sizes.begin(), nd - p_sizes.size(), 1);
  BlockLayout L;
  L.numel = 1;
  L.num_params = 1;
  for (size_t d = 0; d < nd; ++d) {
    const int64_t xs = x_sizes[d], ps = p_sizes[d];
    if (ps < 1 || (xs > 0 && xs % ps != 0) || (xs == 0 && ps != 1)) {
      return "does not tile the input: dimension " + std::to_string(d) + " of the (left-padded) " +
             "parameter shape is " + std::to_string(ps) + " but the input's is " + std::to_string(xs) +
             " (each parameter dimension must divide the input's)";
    }
    L.numel *= xs;
    L.num_params *= ps;
  }
  int k = -1;
  for (int d = static_cast<int>(nd) - 1; d >= 0; --d) {
    if (p_sizes[d] > 1) {
      k = d;
      break;
    }
  }
  if (L.numel == 0) {
    L.run_length = 1;
    L.num_runs = 0;
  } else if (k < 0) {
    L.run_length = L.numel;
    L.num_runs = 1;
  } else {
    int64_t inner = 1;
    for (size_t d = k + 1; d < nd; ++d) inner *= x_sizes[d];
    L.run_length = (x_sizes[k] / p_sizes[k]) * inner;
    L.num_runs = L.numel / L.run_length;
    // Parameter strides of a contiguous parameter tensor.
    std::vector<int64_t> pstride(nd, 1);
    for (int d = static_cast<int>(nd) - 2; d >= 0; --d) pstride[d] = pstride[d + 1] * p_sizes[d + 1];
    // Radix k counts the blocks of dimension k (block 1); outer dims count elements (block
    // x/p); an outer dim with a single parameter only divides the run index (stride 0).
    L.radix.push_back(p_sizes[k]);
    L.block.push_back(1);
    L.param_stride.push_back(pstride[k]);
    for (int d = k - 1; d >= 0; --d) {
      L.radix.push_back(x_sizes[d]);
      L.block.push_back(x_sizes[d] / p_sizes[d]);
      L.param_stride.push_back(p_sizes[d] == 1 ? 0 : pstride[d]);
    }
    // Drop trailing (outermost) radices that never contribute: they only divide r further.
    while (!L.radix.empty() && L.param_stride.back() == 0) {
      L.radix.pop_back();
      L.block.pop_back();
      L.param_stride.pop_back();
    }
  }
  *out = std::move(L);
  return {};
}

// Calls f(param_index, element_begin, element_count) for each run piece inside [begin, end).
template <typename F>
void for_each_run_piece(const BlockLayout& L, int64_t begin, int64_t end, F&& f) {
  if (begin >= end) return;
  if (L.radix.empty()) {
    f(int64_t{0}, begin, end - begin);
    return;
  }
  int64_t run = begin / L.run_length;
  int64_t pos = begin;
  while (pos < end) {
    const int64_t run_end = std::min<int64_t>((run + 1) * L.run_length, end);
    f(L.param_index(run), pos, run_end - pos);
    pos = run_end;
    ++run;
  }
}

}  // namespace lowbit::kernels
