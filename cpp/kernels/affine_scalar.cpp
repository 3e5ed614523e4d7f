// Affine kernels, scalar reference (baseline flags), plus the stochastic-rounding kernels that
// every ISA shares.
#include "kernels/simd_scalar.h"
#include "kernels/affine_kernels_impl.h"

namespace lowbit::kernels {

const AffineKernels& affine_kernels_scalar() {
  static const AffineKernels table = affine_impl::make_affine_kernels<simd::VecScalar>();
  return table;
}

namespace {

template <typename T>
void fake_quantize_stochastic_run(const void* xv, void* yv, int64_t n, const AffineParams& p,
                                  uint64_t seed, uint64_t counter0) {
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  for (int64_t i = 0; i < n; ++i) {
    const float u = stochastic_uniform(seed, counter0 + static_cast<uint64_t>(i));
    store_from_float(y + i, fake_quantize_from_code(affine_code_unclamped_stochastic(load_as_float(x + i), p, u), p));
  }
}

template <typename T>
void fake_quantize_stochastic_backward_run(const void* xv, const void* dyv, void* dxv, int64_t n,
                                           const AffineParams& p, uint64_t seed, uint64_t counter0) {
  const T* x = static_cast<const T*>(xv);
  const T* dy = static_cast<const T*>(dyv);
  T* dx = static_cast<T*>(dxv);
  for (int64_t i = 0; i < n; ++i) {
    const float u = stochastic_uniform(seed, counter0 + static_cast<uint64_t>(i));
    const float q = affine_code_unclamped_stochastic(load_as_float(x + i), p, u);
    store_from_float(dx + i, ste_apply(load_as_float(dy + i), ste_integer_mask(q, p)));
  }
}

template <typename T, typename Code>
void quantize_stochastic_run(const void* xv, void* qv, int64_t n, const AffineParams& p,
                             uint64_t seed, uint64_t counter0) {
  const T* x = static_cast<const T*>(xv);
  Code* q = static_cast<Code*>(qv);
  for (int64_t i = 0; i < n; ++i) {
    const float u = stochastic_uniform(seed, counter0 + static_cast<uint64_t>(i));
    q[i] = static_cast<Code>(affine_code_to_int(affine_code_unclamped_stochastic(load_as_float(x + i), p, u), p));
  }
}

template <template <typename> class Fn, typename... Args>
void by_elem_type(ElemType t, Args&&... args) {
  switch (t) {
    case ElemType::F32: return Fn<float>::run(args...);
    case ElemType::F16: return Fn<Half>::run(args...);
    case ElemType::BF16: return Fn<BFloat16>::run(args...);
  }
}

template <typename T> struct FqStochastic { static constexpr auto run = &fake_quantize_stochastic_run<T>; };
template <typename T> struct FqStochasticBackward { static constexpr auto run = &fake_quantize_stochastic_backward_run<T>; };
template <typename T> struct QuantizeU8 { static constexpr auto run = &quantize_stochastic_run<T, uint8_t>; };
template <typename T> struct QuantizeI8 { static constexpr auto run = &quantize_stochastic_run<T, int8_t>; };
template <typename T> struct QuantizeI16 { static constexpr auto run = &quantize_stochastic_run<T, int16_t>; };
template <typename T> struct QuantizeI32 { static constexpr auto run = &quantize_stochastic_run<T, int32_t>; };

}  // namespace

void fake_quantize_stochastic(ElemType t, const void* x, void* y, int64_t n, const AffineParams& p,
                              uint64_t seed, uint64_t counter0) {
  by_elem_type<FqStochastic>(t, x, y, n, p, seed, counter0);
}

void fake_quantize_stochastic_backward_integer(ElemType t, const void* x, const void* dy, void* dx,
                                               int64_t n, const AffineParams& p, uint64_t seed,
                                               uint64_t counter0) {
  by_elem_type<FqStochasticBackward>(t, x, dy, dx, n, p, seed, counter0);
}

void quantize_stochastic(ElemType t, CodeType c, const void* x, void* q, int64_t n,
                         const AffineParams& p, uint64_t seed, uint64_t counter0) {
  switch (c) {
    case CodeType::U8: return by_elem_type<QuantizeU8>(t, x, q, n, p, seed, counter0);
    case CodeType::I8: return by_elem_type<QuantizeI8>(t, x, q, n, p, seed, counter0);
    case CodeType::I16: return by_elem_type<QuantizeI16>(t, x, q, n, p, seed, counter0);
    case CodeType::I32: return by_elem_type<QuantizeI32>(t, x, q, n, p, seed, counter0);
  }
}

}  // namespace lowbit::kernels
