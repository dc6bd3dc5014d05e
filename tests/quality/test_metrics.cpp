// PSNR and SSIM against hand-computed values and a direct (naive) SSIM of Wang et al. 2004.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "metrics.hpp"
#include "test_support.hpp"

namespace kiln::quality {
namespace {

data::ImageU8 constant(int w, int h, int c, uint8_t v) {
  return {w, h, c, std::vector<uint8_t>(static_cast<size_t>(w) * h * c, v)};
}

data::ImageU8 random_image(int w, int h, uint64_t seed) {
  std::mt19937_64 rng(seed);
  data::ImageU8 img = constant(w, h, 3, 0);
  for (uint8_t& p : img.pixels) p = static_cast<uint8_t>(rng() % 256);
  return img;
}

// SSIM straight from the paper: an explicit 11x11 gaussian window (sigma 1.5, normalized)
// at every position where it fits, per channel, averaged.
double naive_ssim(const data::ImageU8& a, const data::ImageU8& b) {
  double g[11], gs = 0;
  for (int i = 0; i < 11; ++i) gs += g[i] = std::exp(-(i - 5) * (i - 5) / (2 * 1.5 * 1.5));
  const double C1 = 6.5025, C2 = 58.5225;  // (0.01 * 255)^2, (0.03 * 255)^2
  double total = 0;
  for (int c = 0; c < a.channels; ++c) {
    double sum = 0;
    int n = 0;
    for (int y = 5; y < a.height - 5; ++y)
      for (int x = 5; x < a.width - 5; ++x, ++n) {
        double mx = 0, my = 0, xx = 0, yy = 0, xy = 0;
        for (int j = -5; j <= 5; ++j)
          for (int i = -5; i <= 5; ++i) {
            double w = g[j + 5] * g[i + 5] / (gs * gs);
            size_t k = (static_cast<size_t>(y + j) * a.width + x + i) * a.channels + c;
            double u = a.pixels[k], v = b.pixels[k];
            mx += w * u, my += w * v, xx += w * u * u, yy += w * v * v, xy += w * u * v;
          }
        double vx = xx - mx * mx, vy = yy - my * my, cxy = xy - mx * my;
        sum += (2 * mx * my + C1) * (2 * cxy + C2) / ((mx * mx + my * my + C1) * (vx + vy + C2));
      }
    total += sum / n;
  }
  return total / a.channels;
}

TEST(Metrics, PsnrHandComputed) {
  data::ImageU8 a = random_image(31, 37, 1);
  EXPECT_TRUE(std::isinf(psnr(a, a)));
  // A constant offset of 10 everywhere: MSE 100, PSNR = 20 log10(255 / 10) = 28.1308 dB.
  EXPECT_NEAR(psnr(constant(33, 17, 3, 100), constant(33, 17, 3, 110)), 28.130803608679102, 1e-9);
  // One channel of one pixel off by 1 in 64x64x3: 10 log10(255^2 * 12288) = 89.0256 dB.
  data::ImageU8 b = constant(64, 64, 3, 50), c = b;
  c.pixels[77] = 51;
  EXPECT_NEAR(psnr(b, c), 10 * std::log10(255.0 * 255.0 * 12288), 1e-9);
  EXPECT_NEAR(psnr(b, c), 89.0256, 1e-4);
}

TEST(Metrics, SsimHandComputed) {
  data::ImageU8 a = random_image(31, 37, 2);
  EXPECT_NEAR(ssim(a, a), 1.0, 1e-12);
  // Constant images: no variance, SSIM = (2 ab + C1) / (a^2 + b^2 + C1) with C1 = 6.5025.
  EXPECT_NEAR(ssim(constant(33, 17, 3, 100), constant(33, 17, 3, 110)),
              (2 * 100.0 * 110 + 6.5025) / (100.0 * 100 + 110.0 * 110 + 6.5025), 1e-12);
  EXPECT_NEAR((2 * 100.0 * 110 + 6.5025) / (100.0 * 100 + 110.0 * 110 + 6.5025), 0.995476, 1e-6);
}

TEST(Metrics, SsimMatchesTheDirectDefinition) {
  // Awkward sizes; a noisy copy and an unrelated image.
  data::ImageU8 a = random_image(31, 37, 3), b = random_image(31, 37, 4), noisy = a;
  std::mt19937_64 rng(5);
  for (uint8_t& p : noisy.pixels)
    p = static_cast<uint8_t>(std::clamp<int>(p + int(rng() % 41) - 20, 0, 255));
  for (const data::ImageU8* other : {&b, &noisy}) {
    double expected = naive_ssim(a, *other);
    EXPECT_NEAR(ssim(a, *other), expected, 1e-9);
    EXPECT_NEAR(ssim(*other, a), expected, 1e-9);  // symmetric
  }
  EXPECT_GT(ssim(a, noisy), ssim(a, b));
  EXPECT_LT(ssim(a, b), 0.1);
}

TEST(Metrics, BadInputsThrow) {
  test::expect_error([] { psnr(constant(8, 8, 3, 0), constant(8, 9, 3, 0)); }, "differ");
  test::expect_error([] { ssim(constant(16, 16, 3, 0), constant(16, 16, 1, 0)); }, "differ");
  test::expect_error([] { ssim(constant(10, 16, 3, 0), constant(10, 16, 3, 0)); }, "11");
}

}  // namespace
}  // namespace kiln::quality
