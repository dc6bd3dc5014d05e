// Full-reference image metrics for the yardstick: a candidate render against the reference
// render of the same prompt and seed.
#pragma once

#include "scenes.hpp"

namespace kiln::quality {

// PSNR in dB over all pixels and channels, peak 255: 10 log10(255^2 / MSE). +infinity when the
// images are identical. Throws kiln::Error (invalid_argument) when sizes or channels differ.
double psnr(const data::ImageU8& a, const data::ImageU8& b);

// Mean SSIM after Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error
// visibility to structural similarity", IEEE TIP 13(4), 2004: 11x11 gaussian window, sigma 1.5,
// K1 = 0.01, K2 = 0.03, L = 255, computed on each channel of the 8-bit values and averaged over
// channels; the SSIM map is averaged over the pixels where the whole window fits (the paper's
// MATLAB ssim_index uses filter2 'valid'), so a 64x64 image averages 54x54 positions. 1.0 when
// identical. Throws kiln::Error (invalid_argument) for different sizes or a side below 11.
double ssim(const data::ImageU8& a, const data::ImageU8& b);

}  // namespace kiln::quality
