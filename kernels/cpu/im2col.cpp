#include "im2col.hpp"

#include <algorithm>
#include <cstring>

namespace kiln::kernels::cpu {

namespace {

// Walks one row r = (c, kd, kh, kw) of the column matrix over columns [col0, col0 + ncols) in
// runs of consecutive ow (one output row each). For every run it calls
//   run(j, len, src, iw0, t_lo, t_hi)
// where j is the run's first column relative to col0, src is the input row (nullptr when the
// (id, ih) of this run is in the padding), tap t of the run reads src[iw0 + t * stride_w], and
// taps [t_lo, t_hi) are the ones inside the row. Division happens once per run, not per element.
template <typename Src, typename Run>
void walk_row(const ConvGeom3d& g, Src* x, int64_t r, int64_t col0, int64_t ncols, Run&& run) {
  const int64_t kvol = g.kernel_volume();
  const int64_t c = r / kvol, kidx = r % kvol;
  const int64_t kd = kidx / (g.kernel[1] * g.kernel[2]);
  const int64_t kh = (kidx / g.kernel[2]) % g.kernel[1];
  const int64_t kw = kidx % g.kernel[2];
  const int64_t D = g.in[0], H = g.in[1], W = g.in[2];
  const int64_t OH = g.out[1], OW = g.out[2];
  const int64_t sw = g.stride[2];
  const int64_t dd = kd * g.dilation[0] - g.pad[0];
  const int64_t dh = kh * g.dilation[1] - g.pad[1];
  const int64_t dw = kw * g.dilation[2] - g.pad[2];
  Src* xc = x + c * D * H * W;

  int64_t od = col0 / (OH * OW), oh = (col0 / OW) % OH, ow = col0 % OW;
  for (int64_t j = 0; j < ncols;) {
    const int64_t len = std::min(OW - ow, ncols - j);
    const int64_t id = od * g.stride[0] + dd, ih = oh * g.stride[1] + dh;
    if (id < 0 || id >= D || ih < 0 || ih >= H) {
      run(j, len, static_cast<Src*>(nullptr), int64_t{0}, int64_t{0}, int64_t{0});
    } else {
      const int64_t iw0 = ow * sw + dw;
      int64_t t_lo = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
      int64_t t_hi = iw0 > W - 1 ? 0 : (W - 1 - iw0) / sw + 1;
      t_hi = std::min(t_hi, len);
      t_lo = std::min(t_lo, t_hi);
      run(j, len, xc + (id * H + ih) * W, iw0, t_lo, t_hi);
    }
    j += len;
    ow = 0;
    if (++oh == OH) {
      oh = 0;
      ++od;
    }
  }
}

}  // namespace

void im2col_3d(const ConvGeom3d& g, const float* x, int64_t col0, int64_t ncols, float* col,
               int64_t ldcol) {
  const int64_t rows = g.channels * g.kernel_volume();
  const int64_t sw = g.stride[2];
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = col + r * ldcol;
    walk_row(
        g, x, r, col0, ncols,
        [&](int64_t j, int64_t len, const float* src, int64_t iw0, int64_t t_lo, int64_t t_hi) {
          float* d = dst + j;
          if (!src) {
            std::memset(d, 0, static_cast<size_t>(len) * sizeof(float));
            return;
          }
          for (int64_t t = 0; t < t_lo; ++t) d[t] = 0.f;
          if (sw == 1) {
            std::memcpy(d + t_lo, src + iw0 + t_lo,
                        static_cast<size_t>(t_hi - t_lo) * sizeof(float));
          } else {
            for (int64_t t = t_lo; t < t_hi; ++t) d[t] = src[iw0 + t * sw];
          }
          for (int64_t t = t_hi; t < len; ++t) d[t] = 0.f;
        });
  }
}

void col2im_add_3d(const ConvGeom3d& g, const float* col, int64_t col0, int64_t ncols,
                   int64_t ldcol, float* x) {
  const int64_t rows = g.channels * g.kernel_volume();
  const int64_t sw = g.stride[2];
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = col + r * ldcol;
    walk_row(g, x, r, col0, ncols,
             [&](int64_t j, int64_t len, float* dst, int64_t iw0, int64_t t_lo, int64_t t_hi) {
               if (!dst) return;
               const float* sj = s + j;
               float* d = dst + iw0;
               for (int64_t t = t_lo; t < t_hi; ++t) d[t * sw] += sj[t];
             });
  }
}

}  // namespace kiln::kernels::cpu
