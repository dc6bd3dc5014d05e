#include "degrade.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "kiln/core/error.hpp"

namespace kiln::quality {

data::ImageU8 degrade(const data::ImageU8& img, uint64_t seed, const DegradeOptions& o) {
  KILN_ARG(img.channels == 3, "degrade", "needs an RGB image, got ", img.channels, " channels");
  cv::Mat src(img.height, img.width, CV_8UC3, const_cast<uint8_t*>(img.pixels.data())), f;
  src.convertTo(f, CV_32FC3);
  if (o.blur_sigma > 0)
    cv::GaussianBlur(f, f, cv::Size(0, 0), o.blur_sigma, o.blur_sigma, cv::BORDER_REFLECT);
  std::mt19937_64 rng(seed);
  auto uniform = [&] { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; };
  double shift[3];
  for (double& s : shift) s = (rng() & 1) ? o.shift : -o.shift;
  data::ImageU8 out = img;
  const float* p = f.ptr<float>();
  for (size_t i = 0; i < out.pixels.size(); ++i) {
    double n = std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform());
    double v = p[i] + shift[i % 3] + o.noise_sigma * n;
    out.pixels[i] = static_cast<uint8_t>(std::clamp(std::lround(v), 0l, 255l));
  }
  return out;
}

}  // namespace kiln::quality
