// cpp/core/qparams.h: the torch.ao observer formula (METHODS §1.2) and fbgemm's
// ChooseQuantizationParams as torch.fused_moving_avg_obs_fake_quant computes it (§1.3), each
// against PyTorch 2.13's own numbers.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/qparams.h"
#include "test_util.h"

using lowbit::QParams;
using lowbit_test::bits_of;
using lowbit_test::describe;
using lowbit_test::float_of;
using lowbit_test::hex32;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kEps = FLT_EPSILON;  // torch.finfo(torch.float32).eps = 2^-23

struct Config {
  int64_t qmin, qmax;
  bool symmetric;
  const char* name;
};

void check_qparams(const QParams& got, uint32_t scale_bits, int32_t zero_point) {
  INFO("scale " << describe(got.scale) << " want " << describe(float_of(scale_bits)) << "; zero point "
                << got.zero_point << " want " << zero_point);
  CHECK(bits_of(got.scale) == scale_bits);
  CHECK(got.zero_point == zero_point);
}

QParams observer(float lo, float hi, int64_t qmin, int64_t qmax, bool symmetric) {
  return lowbit::choose_qparams_observer(lo, hi, qmin, qmax, symmetric, kEps);
}

// Configurations of the random tables below, in column order.
constexpr Config kTableConfigs[] = {
    {-32768, 32767, false, "int16 affine"}, {-32768, 32767, true, "int16 symmetric"},
    {0, 255, false, "quint8 affine"},  {-128, 127, false, "qint8 affine"},
    {-128, 127, true, "qint8 symmetric"}, {0, 255, true, "quint8 symmetric"},
    {0, 15, false, "[0,15] affine"},    {-8, 7, true, "[-8,7] symmetric"},
};

struct TableRow {
  uint32_t lo_bits, hi_bits;
  struct {
    uint32_t scale_bits;
    int32_t zero_point;
  } expected[8];
};

// Generated with torch 2.13.0 (CPU) by feeding x = [lo, hi] (float32) to
//   MinMaxObserver(dtype, qscheme).calculate_qparams()   (custom quant_min/max, dtype qint32,
//   for the 16-bit columns; custom ranges also for [0,15] and [-8,7]), ranges drawn with numpy
//   default_rng(2024): 40 ranges of magnitudes 1e-7..1e5 (mixed sign, all positive, all
//   negative, near-symmetric) plus [-4.078e-8, 1.782e-3] (the 16-bit case where fbgemm's sum
//   error terms matter), [-1e30, 3e30], [-1e-30, 1e-30], [0, 1e-38]. Values pasted as float32
//   bit patterns.
const TableRow kObserverTable[] = {
    {0xB7B3C98F, 0x3801CB29, {{0x34000000, -32588}, {0x34000000, 0}, {0x345C8C7C, 104}, {0x345C8C7C, -24}, {0x34824D76, 0}, {0x34824D76, 128}, {0x366A5544, 6}, {0x368A724E, 0}}},  // [-2.14323209e-05, 3.09452043e-05]
    {0x40FFD443, 0x411F540E, {{0x391F54AD, -32768}, {0x399F54AD, 0}, {0x3D1FF402, 0}, {0x3D1FF402, -128}, {0x3D9FF402, 0}, {0x3D9FF402, 128}, {0x3F29F342, 0}, {0x3FA9F342, 0}}},  // [7.99466085, 9.95802116]
    {0xB4422879, 0xB3A90FD2, {{0x34000000, -32766}, {0x34000000, 0}, {0x34000000, 2}, {0x34000000, -126}, {0x34000000, 0}, {0x34000000, 128}, {0x34000000, 2}, {0x34000000, 0}}},  // [-1.80823818e-07, -7.87255345e-08]
    {0xB4C1157E, 0x34C482F5, {{0x34000000, -32765}, {0x34000000, 0}, {0x34000000, 3}, {0x34000000, -125}, {0x34000000, 0}, {0x34000000, 128}, {0x34000000, 3}, {0x34000000, 0}}},  // [-3.5964689e-07, 3.66031287e-07]
    {0xC2D2C578, 0x440D6ECA, {{0x3C27C821, -22477}, {0x3C8D6F57, 0}, {0x40286FE9, 40}, {0x40286FE9, -88}, {0x408DFCC7, 0}, {0x408DFCC7, 128}, {0x4232F6E7, 2}, {0x4296DC93, 0}}},  // [-105.385681, 565.731079]
    {0x3D3DA154, 0x4094D691, {{0x3894D726, -32768}, {0x3914D726, 0}, {0x3C956BFD, 0}, {0x3C956BFD, -128}, {0x3D156BFD, 0}, {0x3D156BFD, 128}, {0x3E9EC2BD, 0}, {0x3F1EC2BD, 0}}},  // [0.0462964326, 4.65119219]
    {0xB3ABAD0B, 0xB3802AA8, {{0x34000000, -32767}, {0x34000000, 0}, {0x34000000, 1}, {0x34000000, -127}, {0x34000000, 0}, {0x34000000, 128}, {0x34000000, 1}, {0x34000000, 0}}},  // [-7.99428435e-08, -5.9682236e-08]
    {0xC6FE2DEE, 0x46FB4490, {{0x3F7CBA3C, 188}, {0x3F7E2EEC, 0}, {0x437DB6F6, 128}, {0x437DB6F6, 0}, {0x437F2D1B, 0}, {0x437F2D1B, 128}, {0x4586C933, 8}, {0x45878FF6, 0}}},  // [-32534.9648, 32162.2812]
    {0xC45ABD4D, 0x43552848, {{0x3C880438, 19929}, {0x3CDABE28, 0}, {0x40888C3C, 205}, {0x40888C3C, 77}, {0x40DB98E6, 0}, {0x40DB98E6, 128}, {0x42911500, 12}, {0x42E95274, 0}}},  // [-874.957825, 213.157349]
    {0x37E60DAB, 0x38A94741, {{0x34000000, -32768}, {0x34000000, 0}, {0x34A9F132, 0}, {0x34A9F132, -128}, {0x3529F132, 0}, {0x3529F132, 128}, {0x36B49045, 0}, {0x37349045, 0}}},  // [2.74245012e-05, 8.07182005e-05]
    {0xBB2FAD7D, 0xBA39CFF6, {{0x34000000, -10281}, {0x34000000, 0}, {0x37305DDB, 255}, {0x37305DDB, 127}, {0x37B05DDB, 0}, {0x37B05DDB, 128}, {0x393B63B9, 15}, {0x39BB63B9, 0}}},  // [-0.00268062879, -0.000708817854]
    {0xB843F62A, 0x38533483, {{0x34000000, -32376}, {0x34000000, 0}, {0x34CC61B8, 123}, {0x34CC61B8, -5}, {0x34D4088C, 0}, {0x34D4088C, 128}, {0x36D927D3, 7}, {0x36E14914, 0}}},  // [-4.67208811e-05, 5.03552255e-05]
    {0xC0F79AFD, 0x409BEB19, {{0x3949C3D5, 7445}, {0x39779BF5, 0}, {0x3D4A8D99, 156}, {0x3D4A8D99, 28}, {0x3D789391, 0}, {0x3D789391, 128}, {0x3F573672, 9}, {0x3F840E65, 0}}},  // [-7.73766947, 4.87244844]
    {0x38444D2A, 0x38CA5C4C, {{0x34000000, -32768}, {0x34000000, 0}, {0x34CB2773, 0}, {0x34CB2773, -128}, {0x354B2773, 0}, {0x354B2773, 128}, {0x36D7D9EB, 0}, {0x3757D9EB, 0}}},  // [4.68019061e-05, 9.64930223e-05]
    {0xB7CDB137, 0xB70498FB, {{0x34000000, -32562}, {0x34000000, 0}, {0x34000000, 206}, {0x34000000, 78}, {0x344E7FB7, 0}, {0x344E7FB7, 128}, {0x35DB67B2, 15}, {0x365B67B2, 0}}},  // [-2.45204265e-05, -7.90343165e-06]
    {0xC4E6FBDD, 0x44E97881, {{0x3D683B17, -176}, {0x3D69796A, 0}, {0x41692352, 127}, {0x41692352, -1}, {0x416A62E4, 0}, {0x416A62E4, 128}, {0x4377B587, 7}, {0x43790912, 0}}},  // [-1847.87073, 1867.76575]
    {0xC6024BE2, 0x4559FB9D, {{0x3E38CB82, 13441}, {0x3E824C64, 0}, {0x4239844D, 180}, {0x4239844D, 52}, {0x4282CEB1, 0}, {0x4282CEB1, 128}, {0x44451C92, 11}, {0x448AFB9C, 0}}},  // [-8338.9707, 3487.72583]
    {0x396F7164, 0x3A32B107, {{0x34000000, -32768}, {0x34000000, 0}, {0x3633646B, 0}, {0x3633646B, -128}, {0x36B3646B, 0}, {0x36B3646B, 128}, {0x383E9AB2, 0}, {0x38BE9AB2, 0}}},  // [0.000228350575, 0.000681654026]
    {0xB53ADCEF, 0xB4B4D8B1, {{0x34000000, -32762}, {0x34000000, 0}, {0x34000000, 6}, {0x34000000, -122}, {0x34000000, 0}, {0x34000000, 128}, {0x34000000, 6}, {0x34000000, 0}}},  // [-6.96119002e-07, -3.36852764e-07]
    {0xB312E27C, 0x330B9477, {{0x34000000, -32768}, {0x34000000, 0}, {0x34000000, 0}, {0x34000000, -128}, {0x34000000, 0}, {0x34000000, 128}, {0x34000000, 0}, {0x34000000, 0}}},  // [-3.41992603e-08, 3.24984875e-08]
    {0xBEAAEF34, 0x3ED9E7F4, {{0x37426C56, -3959}, {0x3759E8CE, 0}, {0x3B432EC3, 112}, {0x3B432EC3, -16}, {0x3B5AC2B7, 0}, {0x3B5AC2B7, 128}, {0x3D4F61AF, 7}, {0x3D686EE2, 0}}},  // [-0.333856225, 0.425597787]
    {0x3E4EC6B0, 0x3F015225, {{0x370152A6, -32768}, {0x378152A6, 0}, {0x3B01D3F9, 0}, {0x3B01D3F9, -128}, {0x3B81D3F9, 0}, {0x3B81D3F9, 128}, {0x3D09F139, 0}, {0x3D89F139, 0}}},  // [0.201929808, 0.505159676]
    {0xBD2C27AB, 0xBD254078, {{0x352C2857, 32767}, {0x35AC2857, 0}, {0x392CD47F, 255}, {0x392CD47F, 127}, {0x39ACD47F, 0}, {0x39ACD47F, 128}, {0x3B37A1C7, 15}, {0x3BB7A1C7, 0}}},  // [-0.0420300178, -0.0403446853]
    {0xBF71A63D, 0x3F693E58, {{0x37ED7337, 580}, {0x37F1A72F, 0}, {0x3BEE60AB, 130}, {0x3BEE60AB, 2}, {0x3BF298D6, 0}, {0x3BF298D6, 128}, {0x3DFD46B5, 8}, {0x3E00E132, 0}}},  // [-0.943942845, 0.91110754]
    {0xC0BF815D, 0x3ED88D0B, {{0x38CD0AFB, 28441}, {0x393F821D, 0}, {0x3CCDD806, 238}, {0x3CCDD806, 110}, {0x3D40419F, 0}, {0x3D40419F, 128}, {0x3EDAB586, 14}, {0x3F4C45B9, 0}}},  // [-5.98454142, 0.422951072]
    {0x3BB1C985, 0x3CC5A338, {{0x34C5A3FE, -32768}, {0x3545A3FE, 0}, {0x38C669A2, 0}, {0x38C669A2, -128}, {0x394669A2, 0}, {0x394669A2, 128}, {0x3AD2D03C, 0}, {0x3B52D03C, 0}}},  // [0.00542563433, 0.0241256803]
    {0xBED06223, 0xBEA4EA00, {{0x36D062F3, 32767}, {0x375062F3, 0}, {0x3AD13356, 255}, {0x3AD13356, 127}, {0x3B513356, 0}, {0x3B513356, 128}, {0x3CDE468C, 15}, {0x3D5E468C, 0}}},  // [-0.406998724, -0.322097778]
    {0xB3B8819C, 0x33C07C54, {{0x34000000, -32767}, {0x34000000, 0}, {0x34000000, 1}, {0x34000000, -127}, {0x34000000, 0}, {0x34000000, 128}, {0x34000000, 1}, {0x34000000, 0}}},  // [-8.59174349e-08, 8.96331187e-08]
    {0xBA1A6C28, 0x39198174, {{0x34000000, -27826}, {0x34000000, 0}, {0x36418E13, 204}, {0x36418E13, 76}, {0x369B072F, 0}, {0x369B072F, 128}, {0x384DA6F4, 12}, {0x38A4B7A2, 0}}},  // [-0.000589075033, 0.000146394421]
    {0x3B789478, 0x3C036499, {{0x3403651C, -32768}, {0x3483651C, 0}, {0x3803E882, 0}, {0x3803E882, -128}, {0x3883E882, 0}, {0x3883E882, 128}, {0x3A0C270A, 0}, {0x3A8C270A, 0}}},  // [0.00379302911, 0.00801958982]
    {0xB86D5294, 0xB7DAB459, {{0x34000000, -32293}, {0x34000000, 0}, {0x346E40D5, 255}, {0x346E40D5, 127}, {0x34EE40D5, 0}, {0x34EE40D5, 128}, {0x367D24E2, 15}, {0x36FD24E2, 0}}},  // [-5.65821101e-05, -2.6071606e-05]
    {0xBB8EFC66, 0x3B94C9BE, {{0x3411E3A4, -652}, {0x3414CA53, 0}, {0x38127588, 125}, {0x38127588, -3}, {0x38155F1D, 0}, {0x38155F1D, 128}, {0x3A1B9CE0, 7}, {0x3A1EB50F, 0}}},  // [-0.00436358433, 0.00454065111]
    {0xB9928C3D, 0x396522AE, {{0x34000000, -30423}, {0x34000000, 0}, {0x360311DC, 143}, {0x360311DC, 15}, {0x36131F5C, 0}, {0x36131F5C, 128}, {0x380B42FA, 8}, {0x381C5152, 0}}},  // [-0.000279517757, 0.00021852061]
    {0x340D5541, 0x35136542, {{0x34000000, -32768}, {0x34000000, 0}, {0x34000000, 0}, {0x34000000, -128}, {0x34000000, 0}, {0x34000000, 128}, {0x34000000, 0}, {0x34000000, 0}}},  // [1.31626635e-07, 5.49091169e-07]
    {0xBF404CA6, 0xBE8F4B7A, {{0x37404D66, 32767}, {0x37C04D66, 0}, {0x3B410DB4, 255}, {0x3B410DB4, 127}, {0x3BC10DB4, 0}, {0x3BC10DB4, 128}, {0x3D4D1E8F, 15}, {0x3DCD1E8F, 0}}},  // [-0.751169562, -0.279872715]
    {0xB72267A2, 0x3715059A, {{0x34000000, -32687}, {0x34000000, 0}, {0x34000000, 81}, {0x34000000, -47}, {0x34000000, 0}, {0x34000000, 128}, {0x35A61820, 8}, {0x35AD3B57, 0}}},  // [-9.68008135e-06, 8.88239629e-06]
    {0xBE560925, 0x3EC16822, {{0x371636F0, -9423}, {0x374168E3, 0}, {0x3B16CD27, 91}, {0x3B16CD27, -37}, {0x3B422A4C, 0}, {0x3B422A4C, 128}, {0x3D2039FA, 5}, {0x3D4E4CF1, 0}}},  // [-0.209019259, 0.377747595]
    {0x4004D365, 0x4035D718, {{0x3835D7CE, -32768}, {0x38B5D7CE, 0}, {0x3C368DA6, 0}, {0x3C368DA6, -128}, {0x3CB68DA6, 0}, {0x3CB68DA6, 128}, {0x3E41F680, 0}, {0x3EC1F680, 0}}},  // [2.0754025, 2.84125328]
    {0xBD4F09D4, 0xBB00933D, {{0x354F0AA3, 32767}, {0x35CF0AA3, 0}, {0x394FD9AE, 255}, {0x394FD9AE, 127}, {0x39CFD9AE, 0}, {0x39CFD9AE, 128}, {0x3B5CD749, 15}, {0x3BDCD749, 0}}},  // [-0.0505464822, -0.00196190109]
    {0xBF6AAF10, 0x3F6A0442, {{0x37EA5A93, 46}, {0x37EAAFFB, 0}, {0x3BEB44EE, 128}, {0x3BEB44EE, 0}, {0x3BEB9AAB, 0}, {0x3BEB9AAB, 128}, {0x3DF9F93D, 8}, {0x3DFA5455, 0}}},  // [-0.916733742, 0.914127469]
    {0xB32F2616, 0x3AE991FF, {{0x34000000, -32768}, {0x34000000, 0}, {0x36EA7DDB, 0}, {0x36EA7DDB, -128}, {0x376A7C7B, 0}, {0x376A7C7B, 128}, {0x38F925B9, 0}, {0x39792443, 0}}},  // [-4.07800016e-08, 0.00178199995]
    {0xF149F2CA, 0x72177617, {{0x6A49F394, -16384}, {0x6A9776AE, 0}, {0x6E4ABD88, 64}, {0x6E4ABD88, -64}, {0x6E980E25, 0}, {0x6E980E25, 128}, {0x70576960, 4}, {0x70A18F07, 0}}},  // [-1.00000002e+30, 2.99999989e+30]
    {0x8DA24260, 0x0DA24260, {{0x34000000, -32768}, {0x34000000, 0}, {0x34000000, 0}, {0x34000000, -128}, {0x34000000, 0}, {0x34000000, 128}, {0x34000000, 0}, {0x34000000, 0}}},  // [-1e-30, 1e-30]
    {0x00000000, 0x006CE3EE, {{0x34000000, -32768}, {0x34000000, 0}, {0x34000000, 0}, {0x34000000, -128}, {0x34000000, 0}, {0x34000000, 128}, {0x34000000, 0}, {0x34000000, 0}}},  // [0, 9.99999935e-39]
};

// The same ranges through torch.fused_moving_avg_obs_fake_quant (first call, observer and fake
// quant on, averaging constant 0.01, symmetric_quant = the config's symmetric flag): the scale and
// zero point it writes back.
const TableRow kFbgemmTable[] = {
    {0xB7B3C98F, 0x3801CB29, {{0x387FDA40, -5952}, {0x387FDA40, 0}, {0x387FDA40, 104}, {0x387FDA40, -24}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x387FDA40, 6}, {0x387FDA40, 0}}},
    {0x40FFD443, 0x411F540E, {{0x391F54AD, -32768}, {0x391F54AD, -32768}, {0x3D1FF402, 0}, {0x3D1FF402, -128}, {0x3D1FF402, -128}, {0x3D1FF402, 0}, {0x3F29F342, 0}, {0x3F29F342, -8}}},
    {0xB4422879, 0xB3A90FD2, {{0x387FDA40, 32767}, {0x387FDA40, 32767}, {0x387FDA40, 255}, {0x387FDA40, 127}, {0x387FDA40, 127}, {0x387FDA40, 255}, {0x387FDA40, 15}, {0x387FDA40, 7}}},
    {0xB4C1157E, 0x34C482F5, {{0x387FDA40, -289}, {0x387FDA40, 0}, {0x387FDA40, 126}, {0x387FDA40, -2}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x387FDA40, 7}, {0x387FDA40, 0}}},
    {0xC2D2C578, 0x440D6ECA, {{0x3C27C821, -22477}, {0x3C8D6FE5, 0}, {0x40286FE9, 40}, {0x40286FE9, -88}, {0x408E8BE2, 0}, {0x408E8BE2, 128}, {0x4232F6E7, 2}, {0x42A1A330, 0}}},
    {0x3D3DA154, 0x4094D691, {{0x3894D726, -32768}, {0x3894D726, -32768}, {0x3C956BFD, 0}, {0x3C956BFD, -128}, {0x3C956BFD, -128}, {0x3C956BFD, 0}, {0x3E9EC2BD, 0}, {0x3E9EC2BD, -8}}},
    {0xB3ABAD0B, 0xB3802AA8, {{0x387FDA40, 32767}, {0x387FDA40, 32767}, {0x387FDA40, 255}, {0x387FDA40, 127}, {0x387FDA40, 127}, {0x387FDA40, 255}, {0x387FDA40, 15}, {0x387FDA40, 7}}},
    {0xC6FE2DEE, 0x46FB4490, {{0x3F7CBA3C, 188}, {0x3F7E2DEE, 0}, {0x437DB6F6, 128}, {0x437DB6F6, 0}, {0x437E2DEE, 0}, {0x437E2DEE, 128}, {0x4586C933, 8}, {0x458F94E5, 0}}},
    {0xC45ABD4D, 0x43552848, {{0x3C880438, 19929}, {0x3CDABD4D, 0}, {0x40888C3C, 205}, {0x40888C3C, 77}, {0x40DABD4D, 0}, {0x40DABD4D, 128}, {0x429114FF, 12}, {0x42DABD4D, 0}}},
    {0x37E60DAB, 0x38A94741, {{0x387FDA40, -32768}, {0x387FDA40, -32768}, {0x387FDA40, 0}, {0x387FDA40, -128}, {0x387FDA40, -128}, {0x387FDA40, 0}, {0x387FDA40, 0}, {0x387FDA40, -8}}},
    {0xBB2FAD7D, 0xBA39CFF6, {{0x387FDA40, 32767}, {0x387FDA40, 32767}, {0x387FDA40, 255}, {0x387FDA40, 127}, {0x387FDA40, 127}, {0x387FDA40, 255}, {0x393B63B9, 15}, {0x393B63B9, 7}}},
    {0xB843F62A, 0x38533483, {{0x387FDA40, -1227}, {0x387FDA40, 0}, {0x387FDA40, 123}, {0x387FDA40, -5}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x387FDA40, 7}, {0x387FDA40, 0}}},
    {0xC0F79AFD, 0x409BEB19, {{0x3949C3D5, 7445}, {0x39779AFD, 0}, {0x3D4A8D99, 156}, {0x3D4A8D99, 28}, {0x3D779AFD, 0}, {0x3D779AFD, 128}, {0x3F573672, 9}, {0x3F779AFD, 0}}},
    {0x38444D2A, 0x38CA5C4C, {{0x387FDA40, -32768}, {0x387FDA40, -32768}, {0x387FDA40, 0}, {0x387FDA40, -128}, {0x387FDA40, -128}, {0x387FDA40, 0}, {0x387FDA40, 0}, {0x387FDA40, -8}}},
    {0xB7CDB137, 0xB70498FB, {{0x387FDA40, 32767}, {0x387FDA40, 32767}, {0x387FDA40, 255}, {0x387FDA40, 127}, {0x387FDA40, 127}, {0x387FDA40, 255}, {0x387FDA40, 15}, {0x387FDA40, 7}}},
    {0xC4E6FBDD, 0x44E97881, {{0x3D683B17, -176}, {0x3D697A54, 0}, {0x41692352, 127}, {0x41692352, -1}, {0x416B4F1F, 0}, {0x416B4F1F, 128}, {0x4377B587, 7}, {0x4385696E, 0}}},
    {0xC6024BE2, 0x4559FB9D, {{0x3E38CB82, 13441}, {0x3E824BE2, 0}, {0x4239844E, 180}, {0x4239844E, 52}, {0x42824BE2, 0}, {0x42824BE2, 128}, {0x44451C92, 11}, {0x44824BE2, 0}}},
    {0x396F7164, 0x3A32B107, {{0x387FDA40, -32768}, {0x387FDA40, -32768}, {0x387FDA40, 0}, {0x387FDA40, -128}, {0x387FDA40, -128}, {0x387FDA40, 0}, {0x387FDA40, 0}, {0x387FDA40, -8}}},
    {0xB53ADCEF, 0xB4B4D8B1, {{0x387FDA40, 32767}, {0x387FDA40, 32767}, {0x387FDA40, 255}, {0x387FDA40, 127}, {0x387FDA40, 127}, {0x387FDA40, 255}, {0x387FDA40, 15}, {0x387FDA40, 7}}},
    {0xB312E27C, 0x330B9477, {{0x387FDA40, 835}, {0x387FDA40, 0}, {0x387FDA40, 131}, {0x387FDA40, 3}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x387FDA40, 8}, {0x387FDA40, 0}}},
    {0xBEAAEF34, 0x3ED9E7F4, {{0x387FDA40, -3959}, {0x387FDA40, 0}, {0x3B432EC3, 112}, {0x3B432EC3, -16}, {0x3B5B9F32, 0}, {0x3B5B9F32, 128}, {0x3D4F61AF, 7}, {0x3D790917, 0}}},
    {0x3E4EC6B0, 0x3F015225, {{0x387FDA40, -32768}, {0x387FDA40, -32768}, {0x3B01D3F9, 0}, {0x3B01D3F9, -128}, {0x3B01D3F9, -128}, {0x3B01D3F9, 0}, {0x3D09F139, 0}, {0x3D09F139, -8}}},
    {0xBD2C27AB, 0xBD254078, {{0x387FDA40, 32767}, {0x387FDA40, 32767}, {0x392CD47F, 255}, {0x392CD47F, 127}, {0x392CD47F, 127}, {0x392CD47F, 255}, {0x3B37A1C7, 15}, {0x3B37A1C7, 7}}},
    {0xBF71A63D, 0x3F693E58, {{0x387FDA40, 580}, {0x387FDA40, 0}, {0x3BEE60AB, 130}, {0x3BEE60AB, 2}, {0x3BF1A63D, 0}, {0x3BF1A63D, 128}, {0x3DFD46B6, 8}, {0x3E054832, 0}}},
    {0xC0BF815D, 0x3ED88D0B, {{0x38CD0AFB, 28441}, {0x393F815D, 0}, {0x3CCDD806, 238}, {0x3CCDD806, 110}, {0x3D3F815D, 0}, {0x3D3F815D, 128}, {0x3EDAB586, 14}, {0x3F3F815D, 0}}},
    {0x3BB1C985, 0x3CC5A338, {{0x387FDA40, -32768}, {0x387FDA40, -32768}, {0x38C669A2, 0}, {0x38C669A2, -128}, {0x38C669A2, -128}, {0x38C669A2, 0}, {0x3AD2D03C, 0}, {0x3AD2D03C, -8}}},
    {0xBED06223, 0xBEA4EA00, {{0x387FDA40, 32767}, {0x387FDA40, 32767}, {0x3AD13356, 255}, {0x3AD13356, 127}, {0x3AD13356, 127}, {0x3AD13356, 255}, {0x3CDE468C, 15}, {0x3CDE468C, 7}}},
    {0xB3B8819C, 0x33C07C54, {{0x387FDA40, -694}, {0x387FDA40, 0}, {0x387FDA40, 125}, {0x387FDA40, -3}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x387FDA40, 7}, {0x387FDA40, 0}}},
    {0xBA1A6C28, 0x39198174, {{0x387FDA40, 19722}, {0x387FDA40, 0}, {0x387FDA40, 204}, {0x387FDA40, 76}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x387FDA40, 12}, {0x389A6C28, 0}}},
    {0x3B789478, 0x3C036499, {{0x387FDA40, -32768}, {0x387FDA40, -32768}, {0x387FDA40, 0}, {0x387FDA40, -128}, {0x387FDA40, -128}, {0x387FDA40, 0}, {0x3A0C270A, 0}, {0x3A0C270A, -8}}},
    {0xB86D5294, 0xB7DAB459, {{0x387FDA40, 32767}, {0x387FDA40, 32767}, {0x387FDA40, 255}, {0x387FDA40, 127}, {0x387FDA40, 127}, {0x387FDA40, 255}, {0x387FDA40, 15}, {0x387FDA40, 7}}},
    {0xBB8EFC66, 0x3B94C9BE, {{0x387FDA40, -652}, {0x387FDA40, 0}, {0x387FDA40, 125}, {0x387FDA40, -3}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x3A1B9CE0, 7}, {0x3A2A0B22, 0}}},
    {0xB9928C3D, 0x396522AE, {{0x387FDA40, 4013}, {0x387FDA40, 0}, {0x387FDA40, 143}, {0x387FDA40, 15}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x387FDA40, 8}, {0x387FDA40, 0}}},
    {0x340D5541, 0x35136542, {{0x387FDA40, -32768}, {0x387FDA40, -32768}, {0x387FDA40, 0}, {0x387FDA40, -128}, {0x387FDA40, -128}, {0x387FDA40, 0}, {0x387FDA40, 0}, {0x387FDA40, -8}}},
    {0xBF404CA6, 0xBE8F4B7A, {{0x387FDA40, 32767}, {0x387FDA40, 32767}, {0x3B410DB4, 255}, {0x3B410DB4, 127}, {0x3B410DB4, 127}, {0x3B410DB4, 255}, {0x3D4D1E8F, 15}, {0x3D4D1E8F, 7}}},
    {0xB72267A2, 0x3715059A, {{0x387FDA40, 1408}, {0x387FDA40, 0}, {0x387FDA40, 133}, {0x387FDA40, 5}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x387FDA40, 8}, {0x387FDA40, 0}}},
    {0xBE560925, 0x3EC16822, {{0x387FDA40, -9423}, {0x387FDA40, 0}, {0x3B16CD27, 91}, {0x3B16CD27, -37}, {0x3B42EDFE, 0}, {0x3B42EDFE, 128}, {0x3D2039FA, 5}, {0x3D5D094B, 0}}},
    {0x4004D365, 0x4035D718, {{0x387FDA40, -32768}, {0x387FDA40, -32768}, {0x3C368DA6, 0}, {0x3C368DA6, -128}, {0x3C368DA6, -128}, {0x3C368DA6, 0}, {0x3E41F680, 0}, {0x3E41F680, -8}}},
    {0xBD4F09D4, 0xBB00933D, {{0x387FDA40, 32767}, {0x387FDA40, 32767}, {0x394FD9AE, 255}, {0x394FD9AE, 127}, {0x394FD9AE, 127}, {0x394FD9AE, 255}, {0x3B5CD749, 15}, {0x3B5CD749, 7}}},
    {0xBF6AAF10, 0x3F6A0442, {{0x387FDA40, 46}, {0x387FDA40, 0}, {0x3BEB44EE, 128}, {0x3BEB44EE, 0}, {0x3BEBDBFA, 0}, {0x3BEBDBFA, 128}, {0x3DF9F93D, 8}, {0x3E05B94A, 0}}},
    {0xB32F2616, 0x3AE991FF, {{0x387FDA40, -32767}, {0x387FDA40, 0}, {0x387FDA40, 0}, {0x387FDA40, -128}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x38F925B9, 0}, {0x398577FF, 0}}},
    {0xF149F2CA, 0x72177617, {{0x6A49F393, -16384}, {0x6A977746, 0}, {0x6E4ABD87, 64}, {0x6E4ABD87, -64}, {0x6E98A766, 0}, {0x6E98A766, 128}, {0x7057695F, 4}, {0x70AD193F, 0}}},
    {0x8DA24260, 0x0DA24260, {{0x387FDA40, -1}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x387FDA40, -1}, {0x387FDA40, 0}, {0x387FDA40, 128}, {0x387FDA40, 8}, {0x387FDA40, 0}}},
    {0x00000000, 0x006CE3EE, {{0x3DCCCCCD, 32767}, {0x3DCCCCCD, 32767}, {0x3DCCCCCD, 0}, {0x3DCCCCCD, 127}, {0x3DCCCCCD, 127}, {0x3DCCCCCD, 0}, {0x3DCCCCCD, 0}, {0x3DCCCCCD, 7}}},
};

}  // namespace

TEST_CASE("qparams observer: METHODS 1.2 per-tensor vectors (torch 2.13 = torch 1.13 here)", "[qparams]") {
  const float a = -1.0f, b = 3.0f;  // x = [-1, 0.5, 2, 3]
  check_qparams(observer(a, b, 0, 255, false), 0x3C808081u, 64);
  check_qparams(observer(a, b, -128, 127, false), 0x3C808081u, -64);
  check_qparams(observer(a, b, 0, 127, false), 0x3D010204u, 32);  // reduce_range: the caller halves
  check_qparams(observer(a, b, -128, 127, true), 0x3CC0C0C1u, 0);   // 3 / 127.5
  check_qparams(observer(a, b, 0, 255, true), 0x3CC0C0C1u, 128);
  check_qparams(observer(a, b, -127, 127, true), 0x3CC18306u, 0);   // 3 / 127
  check_qparams(observer(a, b, 0, 15, false), 0x3E888889u, 4);
  check_qparams(observer(0.5f, 2.0f, 0, 255, false), 0x3C008081u, 0);
  check_qparams(observer(-2.0f, -0.5f, 0, 255, false), 0x3C008081u, 255);
  check_qparams(observer(0.0f, 0.0f, 0, 255, false), 0x34000000u, 0);  // eps
  check_qparams(observer(1.5f, 1.5f, 0, 255, false), 0x3BC0C0C1u, 0);
  // min/scale is exactly -76.5 in float32: RNE gives -76, so zp 76 (RHAZ would give 77).
  check_qparams(observer(-0.3f, 0.7f, 0, 255, false), 0x3B808081u, 76);
}

TEST_CASE("qparams observer: per-channel rows are per-tensor calls (METHODS 1.2)", "[qparams]") {
  // rows [[-1, .5], [.25, 2], [0, 0]], ch_axis 0
  const float lo[] = {-1.0f, 0.25f, 0.0f}, hi[] = {0.5f, 2.0f, 0.0f};
  const uint32_t affine_scale[] = {0x3BC0C0C1u, 0x3C008081u, 0x34000000u};
  const int32_t affine_zp[] = {170, 0, 0};
  const uint32_t sym_scale[] = {0x3C008081u, 0x3C808081u, 0x34000000u};
  for (int c = 0; c < 3; ++c) {
    INFO("channel " << c);
    check_qparams(observer(lo[c], hi[c], 0, 255, false), affine_scale[c], affine_zp[c]);
    check_qparams(observer(lo[c], hi[c], -128, 127, true), sym_scale[c], 0);
  }
}

TEST_CASE("qparams observer: moving-average vector of METHODS 1.2", "[qparams]") {
  // MovingAverageMinMaxObserver(c = 0.01): batch [-1, 1] sets (min, max); batch [-3, 5] moves them
  // to min + c·(batch_min - min) in float32 (the op layer does this; torch 2.13 gives
  // min 0xBF828F5C, max 0x3F851EB8).
  const float c = 0.01f;
  float mn = -1.0f, mx = 1.0f;
  mn = mn + c * (-3.0f - mn);
  mx = mx + c * (5.0f - mx);
  CHECK(bits_of(mn) == 0xBF828F5Cu);
  CHECK(bits_of(mx) == 0x3F851EB8u);
  check_qparams(observer(mn, mx, 0, 255, false), 0x3C045B65u, 126);
}

TEST_CASE("qparams observer: degenerate and sentinel ranges", "[qparams]") {
  // Never observed (min = +inf, max = -inf): torch.ao warns and returns (1.0, 0).
  check_qparams(observer(kInf, -kInf, 0, 255, false), 0x3F800000u, 0);
  check_qparams(observer(kInf, -kInf, -128, 127, true), 0x3F800000u, 0);
  // A range that excludes zero is widened to include it: [2, 3] behaves as [0, 3].
  check_qparams(observer(2.0f, 3.0f, 0, 255, false), bits_of(observer(0.0f, 3.0f, 0, 255, false).scale), 0);
  // Tiny ranges clamp to eps whatever the sign.
  check_qparams(observer(-1.0e-30f, 1.0e-30f, -128, 127, true), 0x34000000u, 0);
  // The zero point is clamped into [qmin, qmax] even when min/scale rounds outside it.
  const QParams q = observer(-1.0e-9f, 0.0f, 0, 255, false);
  CHECK(q.zero_point >= 0);
  CHECK(q.zero_point <= 255);
}

TEST_CASE("qparams observer: symmetric zero point rule (a documented difference from torch.ao)", "[qparams]") {
  // lowbit uses the upper midpoint (qmin + qmax + 1) / 2 for every unsigned range. torch.ao
  // agrees for its default ranges (quint8 -> 128) but uses the lower midpoint for custom ranges:
  // MinMaxObserver(quint8, per_tensor_symmetric, quant_min=0, quant_max=15) gives zp 7 on
  // [-0.3, 0.7] (torch 2.13), lowbit gives 8. Same scale.
  CHECK(lowbit::symmetric_zero_point(0, 255) == 128);
  CHECK(lowbit::symmetric_zero_point(0, 65535) == 32768);
  CHECK(lowbit::symmetric_zero_point(0, 127) == 64);
  CHECK(lowbit::symmetric_zero_point(-128, 127) == 0);
  CHECK(lowbit::symmetric_zero_point(-127, 127) == 0);
  const QParams q = observer(-0.3f, 0.7f, 0, 15, true);
  CHECK(bits_of(q.scale) == 0x3DBF258Cu);  // torch 2.13: 0.09333333373069763
  CHECK(q.zero_point == 8);
}

TEST_CASE("qparams observer: 44 ranges x 8 configs against torch 2.13", "[qparams]") {
  for (const TableRow& row : kObserverTable) {
    const float lo = float_of(row.lo_bits), hi = float_of(row.hi_bits);
    for (int c = 0; c < 8; ++c) {
      const Config& cfg = kTableConfigs[c];
      INFO(cfg.name << " on [" << describe(lo) << ", " << describe(hi) << "]");
      check_qparams(observer(lo, hi, cfg.qmin, cfg.qmax, cfg.symmetric), row.expected[c].scale_bits,
                    row.expected[c].zero_point);
    }
  }
}

TEST_CASE("qparams fbgemm: METHODS 1.3 vectors as torch 2.13 gives them", "[qparams]") {
  check_qparams(lowbit::choose_qparams_fbgemm(-1.0f, 3.0f, -128, 127, true), 0x3CC18306u, 0);  // 3/127
  check_qparams(lowbit::choose_qparams_fbgemm(-1.0f, 3.0f, 0, 255, true), 0x3CC18306u, 128);
  check_qparams(lowbit::choose_qparams_fbgemm(-3.0f, 1.0f, -128, 127, true), 0x3CC00000u, 0);  // 3/128
  // torch 1.13 gave 77 (zero point from the double scale, 76.500003); torch 2.13 rounds the scale
  // to float32 first and gives 76.
  check_qparams(lowbit::choose_qparams_fbgemm(-0.3f, 0.7f, 0, 255, false), 0x3B808081u, 76);
  check_qparams(lowbit::choose_qparams_fbgemm(0.0f, 0.0f, 0, 255, false), 0x3DCCCCCDu, 0);  // 0.1
  check_qparams(lowbit::choose_qparams_fbgemm(0.0f, 1.0e-3f, 0, 255, false), 0x387FDA40u, 0);  // 6.1e-5
}

TEST_CASE("qparams fbgemm: 44 ranges x 8 configs against torch.fused_moving_avg_obs_fake_quant", "[qparams]") {
  for (const TableRow& row : kFbgemmTable) {
    const float lo = float_of(row.lo_bits), hi = float_of(row.hi_bits);
    for (int c = 0; c < 8; ++c) {
      const Config& cfg = kTableConfigs[c];
      INFO(cfg.name << " on [" << describe(lo) << ", " << describe(hi) << "]");
      check_qparams(lowbit::choose_qparams_fbgemm(lo, hi, cfg.qmin, cfg.qmax, cfg.symmetric),
                    row.expected[c].scale_bits, row.expected[c].zero_point);
    }
  }
}

TEST_CASE("qparams fbgemm: the zero-point error terms are sums as in FBGEMM", "[qparams]") {
  // fbgemm::ChooseQuantizationParams picks the end with the smaller |q_end| + |end / scale|;
  // ATen's quant_utils copy subtracts. For 16-bit ranges after the small-scale cutoff the two
  // pick different ends and the zero points differ by one. Ranges found by searching with a
  // Python transcription of both forms; the expected values are torch 2.13's
  // fused_moving_avg_obs_fake_quant(qmin=-32768, qmax=32767, symmetric_quant=False).
  struct Row {
    uint32_t lo_bits, hi_bits, scale_bits;
    int32_t zero_point;
  };
  const Row rows[] = {
      {0xB715E724u, 0x3BDAFEE9u, 0x387FDA40u, -32681},  // [-8.934909e-06, 0.0066832197]; the difference form gives -32680
      {0xB4C2471Au, 0x3504C8C3u, 0x387FDA40u, -5080},  // [-3.618705e-07, 4.946598e-07]; the difference form gives -5081
      {0xBD99F5C0u, 0x4049118Fu, 0x387FDA40u, -31236},  // [-0.07517576, 3.1416967]; the difference form gives -31237
      {0xBF6872BEu, 0x405C34E3u, 0x388B2954u, -19084},  // [-0.9080008, 3.440728]; the difference form gives -19085
      {0xBC17C216u, 0x3F76771Bu, 0x387FDA40u, -32144},  // [-0.009262582, 0.9627549]; the difference form gives -32143
      {0xB6956AF1u, 0x3C1CAF27u, 0x387FDA40u, -32737},  // [-4.4529957e-06, 0.009563244]; the difference form gives -32738
      {0xB0818CB0u, 0x34914543u, 0x387FDA40u, -32540},  // [-9.425971e-10, 2.705875e-07]; the difference form gives -32541
      {0xBD21029Du, 0x3D871D75u, 0x387FDA40u, -8299},  // [-0.039309133, 0.06597415]; the difference form gives -8300
      {0xB4DD0A9Fu, 0x37077803u, 0x387FDA40u, -29588},  // [-4.1172186e-07, 8.074569e-06]; the difference form gives -29589
      {0xB0086B2Fu, 0x2FCCBB22u, 0x387FDA40u, 4672},  // [-4.962883e-10, 3.724035e-10]; the difference form gives 4673
      {0xB520984Fu, 0x350F0D92u, 0x387FDA40u, 1892},  // [-5.9826283e-07, 5.32914e-07]; the difference form gives 1893
      {0xBEF8C738u, 0x3C32CA8Au, 0x387FDA40u, 31328},  // [-0.48589492, 0.010912547]; the difference form gives 31327
  };
  for (const Row& r : rows) {
    const float lo = float_of(r.lo_bits), hi = float_of(r.hi_bits);
    INFO("[" << describe(lo) << ", " << describe(hi) << "] in [-32768, 32767]");
    check_qparams(lowbit::choose_qparams_fbgemm(lo, hi, -32768, 32767, false), r.scale_bits, r.zero_point);
  }
}

TEST_CASE("qparams: range validation names what is wrong", "[qparams]") {
  CHECK(lowbit::qparams_range_error(-1.0f, 1.0f) == nullptr);
  CHECK(lowbit::qparams_range_error(0.0f, 0.0f) == nullptr);
  CHECK(lowbit::qparams_range_error(kInf, -kInf) == nullptr);  // the never-observed sentinel
  CHECK(lowbit::is_unobserved_range(kInf, -kInf));
  CHECK_FALSE(lowbit::is_unobserved_range(-kInf, kInf));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::strcmp(lowbit::qparams_range_error(nan, 1.0f), "is NaN") == 0);
  CHECK(std::strcmp(lowbit::qparams_range_error(0.0f, nan), "is NaN") == 0);
  CHECK(std::strcmp(lowbit::qparams_range_error(-kInf, 1.0f), "is infinite") == 0);
  CHECK(std::strcmp(lowbit::qparams_range_error(0.0f, kInf), "is infinite") == 0);
  CHECK(std::strcmp(lowbit::qparams_range_error(-kInf, kInf), "is infinite") == 0);
  CHECK(std::strcmp(lowbit::qparams_range_error(2.0f, 1.0f), "has min_val > max_val") == 0);
}
