#include "metrics.hpp"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <limits>

#include "kiln/core/error.hpp"

namespace kiln::quality {

namespace {

void check_same(const data::ImageU8& a, const data::ImageU8& b, const char* ctx) {
  KILN_ARG(a.width == b.width && a.height == b.height && a.channels == b.channels, ctx,
           "images differ in size: ", a.width, "x", a.height, "x", a.channels, " vs ", b.width, "x",
           b.height, "x", b.channels);
  KILN_ARG(a.width > 0 && a.height > 0 && a.channels > 0 &&
               a.pixels.size() == static_cast<size_t>(a.width) * a.height * a.channels &&
               b.pixels.size() == a.pixels.size(),
           ctx, "pixel buffer does not match the image size");
}

}  // namespace

double psnr(const data::ImageU8& a, const data::ImageU8& b) {
  check_same(a, b, "psnr");
  double se = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    double d = double(a.pixels[i]) - double(b.pixels[i]);
    se += d * d;
  }
  if (se == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 * double(a.pixels.size()) / se);
}

double ssim(const data::ImageU8& a, const data::ImageU8& b) {
  check_same(a, b, "ssim");
  constexpr int kWin = 11, kHalf = kWin / 2;
  constexpr double kSigma = 1.5, C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
  KILN_ARG(a.width >= kWin && a.height >= kWin, "ssim", "needs a side >= 11, got ", a.width, "x",
           a.height);
  double total = 0;
  for (int c = 0; c < a.channels; ++c) {
    cv::Mat x(a.height, a.width, CV_64F), y(a.height, a.width, CV_64F);
    for (int j = 0; j < a.height; ++j)
      for (int i = 0; i < a.width; ++i) {
        size_t k = (static_cast<size_t>(j) * a.width + i) * a.channels + c;
        x.at<double>(j, i) = a.pixels[k];
        y.at<double>(j, i) = b.pixels[k];
      }
    // Local (gaussian-weighted) means, variances and covariance. The border mode only affects
    // positions within 5 px of the edge, which the 'valid' average below leaves out.
    auto blur = [](const cv::Mat& m) {
      cv::Mat out;
      cv::GaussianBlur(m, out, cv::Size(kWin, kWin), kSigma, kSigma, cv::BORDER_REFLECT);
      return out;
    };
    cv::Mat mx = blur(x), my = blur(y), sxx = blur(x.mul(x)), syy = blur(y.mul(y)),
            sxy = blur(x.mul(y));
    double sum = 0;
    for (int j = kHalf; j < a.height - kHalf; ++j)
      for (int i = kHalf; i < a.width - kHalf; ++i) {
        double ux = mx.at<double>(j, i), uy = my.at<double>(j, i);
        double vx = sxx.at<double>(j, i) - ux * ux, vy = syy.at<double>(j, i) - uy * uy,
               cxy = sxy.at<double>(j, i) - ux * uy;
        sum += ((2 * ux * uy + C1) * (2 * cxy + C2)) / ((ux * ux + uy * uy + C1) * (vx + vy + C2));
      }
    total += sum / (double(a.height - 2 * kHalf) * (a.width - 2 * kHalf));
  }
  return total / a.channels;
}

}  // namespace kiln::quality
