// im2col / col2im for 1-, 2- and 3-D convolutions, written once for 3-D: a 1-D or 2-D conv is a
// 3-D one whose leading spatial dims have size 1, kernel 1, stride 1 and no padding.
//
// The column matrix has one row per (channel, kd, kh, kw) and one column per output position
// (od, oh, ow) in row-major order, so `weight (Cout, C*KD*KH*KW) @ col` is the conv output in
// NC(D)HW layout. Both functions work on a tile of output columns [col0, col0 + ncols) so the
// caller can bound the buffer (and parallelise over tiles of one image).
// Ref: Chellapilla et al., "High Performance Convolutional Neural Networks for Document
//      Processing" (2006) — the unrolling of convolution into a matrix product.
#pragma once

#include <cstdint>

namespace kiln::kernels::cpu {

struct ConvGeom3d {
  int64_t channels = 1;        // C: input channels that this column matrix covers
  int64_t in[3] = {1, 1, 1};   // (D, H, W) of the image the taps read
  int64_t out[3] = {1, 1, 1};  // (D', H', W') output positions
  int64_t kernel[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1};
  int64_t pad[3] = {0, 0, 0};  // zero padding before each dim (after is implied by out)
  int64_t dilation[3] = {1, 1, 1};

  int64_t kernel_volume() const { return kernel[0] * kernel[1] * kernel[2]; }
  int64_t out_volume() const { return out[0] * out[1] * out[2]; }
  int64_t in_volume() const { return in[0] * in[1] * in[2]; }
};

// col[r * ldcol + j] = x[c, id, ih, iw] (0 outside x) for rows r = (c, kd, kh, kw) and
// columns j in [0, ncols) standing for output positions col0 + j.
// x: (C, D, H, W) contiguous; col: (C*KD*KH*KW, ldcol), ldcol >= ncols.
void im2col_3d(const ConvGeom3d& g, const float* x, int64_t col0, int64_t ncols, float* col,
               int64_t ldcol);

// The adjoint of im2col_3d: x[c, id, ih, iw] += col[r * ldcol + j] for every entry that lands
// inside x (entries that fall in the padding are dropped). Used by transposed convolution.
void col2im_add_3d(const ConvGeom3d& g, const float* col, int64_t col0, int64_t ncols,
                   int64_t ldcol, float* x);

}  // namespace kiln::kernels::cpu
