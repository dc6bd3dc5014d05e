#include "reader.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "background.hpp"
#include "kiln/core/error.hpp"
#include "shape_fit.hpp"

namespace kiln::quality {

namespace {

using data::Color;

// RGB distances (0..255 per channel). Palette colors are >= 80 apart and contrasts() keeps an
// object >= 80 from a gradient, so a pixel half covered by an object is >= 40 off the background;
// 25 is 3 sigma of the noise of a generated image (~8 per channel) yet below that.
constexpr float kForeground = 25.f;
// Largest unmixing residual of an object pixel: generated colors are off by ~10-30.
constexpr float kMaxResidual = 60.f;
// Per-pixel tie-break towards full coverage: gray on white is also black at alpha 0.52 with no
// residual; cost = residual + kCoveragePenalty * (1 - alpha) * |c - bg| prefers gray there.
constexpr float kCoveragePenalty = 0.25f;
// A component's color must cover its interior: its 90th percentile alpha at least this.
constexpr float kInteriorAlpha = 0.75f;
// A component is one color when at most this fraction of its pixels is unexplained (residual
// above kFringeResidual) by that color; otherwise it is split by pixel colors.
constexpr double kImpureFraction = 0.15;
// Mean residual under which a small component is the edge fringe of a bigger neighbour.
constexpr float kFringeResidual = 30.f;
// A component smaller than this fraction of the smallest possible shape is noise.
constexpr double kMinAreaFraction = 0.4;
// Splitting a component into 2 or 3 same-shape copies (blurred copies may touch) must raise
// the area-weighted IoU by this much.
constexpr double kSplitGain = 0.08;
// Only a fit below this IoU is tried split (one object fits 0.95+ exact, 0.75-0.9 blurred).
constexpr double kSplitBelow = 0.85;

struct Unmixed {
  float alpha = 0, residual = 0;
};

// p = bg + alpha (c - bg) + residual, alpha clamped to [0, 1].
Unmixed unmix(Rgbf p, Rgbf bg, Rgbf c) {
  Rgbf d = c - bg, e = p - bg;
  float alpha = std::clamp(dot(e, d) / std::max(dot(d, d), 1e-6f), 0.f, 1.f);
  Rgbf r = e - alpha * d;
  return {alpha, std::sqrt(dot(r, r))};
}

struct Component {
  Color color = Color::red;
  std::vector<int> pixels;  // image indices
  Rgbf measured;            // mean of the pixels its color covers >= kInteriorAlpha
  bool alive = true;
};

class Reader {
 public:
  explicit Reader(const ImageU8& img) : w_(img.width), h_(img.height) {
    px_.resize(static_cast<size_t>(w_) * h_);
    for (size_t i = 0; i < px_.size(); ++i) {
      const uint8_t* p = &img.pixels[i * img.channels];
      px_[i] = {float(p[0]), float(p[1]), float(p[2])};
    }
    bg_ = fit_background(px_, w_, h_);
    for (int c = 0; c < data::kNumColors; ++c)
      if (data::contrasts(static_cast<Color>(c), bg_.background)) cands_.push_back(Color(c));
  }

  Reading read() {
    label_pixels();
    find_components();
    drop_noise();
    Reading out;
    out.background = {bg_.background, to_rgb(bg_.a), to_rgb(bg_.b), bg_.inlier_fraction};
    for (size_t k = 0; k < comps_.size(); ++k)
      if (comps_[k].alive)
        for (const Detection& d : detect(static_cast<int>(k))) out.objects.push_back(d);
    return out;
  }

 private:
  static data::Rgb to_rgb(Rgbf c) {
    auto u = [](float v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0l, 255l)); };
    return {u(c.r), u(c.g), u(c.b)};
  }
  static Rgbf pal(Color c) { return to_rgbf(data::palette(c)); }
  int x_of(int i) const { return i % w_; }
  int y_of(int i) const { return i / w_; }

  // Step 2: foreground pixels and their own best color (-1 = background or undecided).
  void label_pixels() {
    label_.assign(px_.size(), -1);
    for (size_t i = 0; i < px_.size(); ++i) {
      int ii = static_cast<int>(i);
      if (bg_.distance(px_[i], ii) < kForeground) continue;
      Rgbf bg = bg_.predict(ii);
      float best = std::numeric_limits<float>::infinity();
      for (Color c : cands_) {
        Unmixed u = unmix(px_[i], bg, pal(c));
        Rgbf d = pal(c) - bg;
        float cost = u.residual + kCoveragePenalty * (1 - u.alpha) * std::sqrt(dot(d, d));
        if (u.alpha >= 0.5f && u.residual < kMaxResidual && cost < best)
          best = cost, label_[i] = int(c);
      }
    }
  }

  // 8-connected components of `mask` restricted to `pixels`; each returned in raster order.
  std::vector<std::vector<int>> connected(const std::vector<int>& pixels,
                                          const std::vector<int>& key) const {
    cv::Mat1i lab(h_, w_, 0);
    int next = 0;
    std::vector<std::vector<int>> out;
    for (int i : pixels) {
      if (lab(y_of(i), x_of(i))) continue;
      out.emplace_back();
      std::vector<int> stack = {i};
      lab(y_of(i), x_of(i)) = ++next;
      while (!stack.empty()) {
        int j = stack.back();
        stack.pop_back();
        out.back().push_back(j);
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) {
            int x = x_of(j) + dx, y = y_of(j) + dy;
            if (x < 0 || y < 0 || x >= w_ || y >= h_ || lab(y, x)) continue;
            int n = y * w_ + x;
            if (key[n] < 0 || key[n] != key[i]) continue;
            lab(y, x) = next;
            stack.push_back(n);
          }
      }
      std::sort(out.back().begin(), out.back().end());
    }
    return out;
  }

  // The color of a set of pixels: among candidates whose 90th percentile alpha reaches
  // kInteriorAlpha (the object's interior is that color), the least mean residual.
  Color choose_color(const std::vector<int>& pixels, double* impure = nullptr) const {
    Color best = cands_.empty() ? Color::red : cands_[0];
    double best_res = std::numeric_limits<double>::infinity(), best_q = -1;
    bool best_covers = false;
    std::vector<float> alphas(pixels.size());
    for (Color c : cands_) {
      double res = 0;
      for (size_t k = 0; k < pixels.size(); ++k) {
        Unmixed u = unmix(px_[pixels[k]], bg_.predict(pixels[k]), pal(c));
        alphas[k] = u.alpha;
        res += std::min(u.residual, 80.f);
      }
      res /= pixels.size();
      size_t q90 = pixels.size() * 9 / 10;
      std::nth_element(alphas.begin(), alphas.begin() + q90, alphas.end());
      double q = alphas[q90];
      bool covers = q >= kInteriorAlpha;
      if ((covers && (!best_covers || res < best_res)) || (!covers && !best_covers && q > best_q))
        best = c, best_res = res, best_q = q, best_covers = covers;
    }
    if (impure) {
      size_t bad = 0;
      for (int i : pixels)
        bad += unmix(px_[i], bg_.predict(i), pal(best)).residual > kFringeResidual;
      *impure = double(bad) / pixels.size();
    }
    return best;
  }

  void add_component(std::vector<int> pixels, Color color) {
    Component c{color, std::move(pixels), {}, true};
    Rgbf sum;
    int n = 0;
    for (int i : c.pixels)
      if (unmix(px_[i], bg_.predict(i), pal(color)).alpha >= kInteriorAlpha)
        sum = sum + px_[i], ++n;
    c.measured = n ? (1.f / n) * sum : pal(color);
    int id = static_cast<int>(comps_.size());
    for (int i : c.pixels) comp_of_[i] = id;
    comps_.push_back(std::move(c));
  }

  // Step 3: connected foreground regions; one color each unless two touching objects of
  // different colors make it impure, then split by pixel colors with fringes merged back.
  void find_components() {
    comp_of_.assign(px_.size(), -1);
    std::vector<int> fg, any(px_.size(), -1);
    for (size_t i = 0; i < px_.size(); ++i)
      if (label_[i] >= 0) fg.push_back(int(i)), any[i] = 0;
    for (std::vector<int>& region : connected(fg, any)) {
      double impure = 0;
      Color c = choose_color(region, &impure);
      if (impure <= kImpureFraction) {
        add_component(std::move(region), c);
        continue;
      }
      std::vector<std::vector<int>> parts = connected(region, label_);
      merge_fringes(parts);
      for (std::vector<int>& part : parts)
        if (!part.empty()) add_component(part, choose_color(part));
    }
    std::sort(comps_.begin(), comps_.end(),
              [](const Component& a, const Component& b) { return a.pixels[0] < b.pixels[0]; });
    for (size_t k = 0; k < comps_.size(); ++k)
      for (int i : comps_[k].pixels) comp_of_[i] = int(k);
  }

  // A part touching a part at least twice its size, whose pixels that part's color and the
  // background explain as a mixture, is its anti-aliased / blurred edge (black on white has a
  // gray rim, red on yellow an orange one): it joins that part.
  void merge_fringes(std::vector<std::vector<int>>& parts) const {
    std::vector<int> part_of(px_.size(), -1);
    for (size_t k = 0; k < parts.size(); ++k)
      for (int i : parts[k]) part_of[i] = int(k);
    std::vector<size_t> order(parts.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return parts[a].size() < parts[b].size(); });
    for (size_t a : order) {
      int host = -1;
      for (int i : parts[a])
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) {
            int x = x_of(i) + dx, y = y_of(i) + dy;
            if (x < 0 || y < 0 || x >= w_ || y >= h_) continue;
            int b = part_of[y * w_ + x];
            if (b < 0 || b == int(a) || parts[b].size() < 2 * parts[a].size()) continue;
            if (host < 0 || parts[b].size() > parts[host].size()) host = b;
          }
      if (host < 0) continue;
      Rgbf hc = pal(choose_color(parts[host]));
      double res = 0;
      for (int i : parts[a]) res += unmix(px_[i], bg_.predict(i), hc).residual;
      if (res / parts[a].size() >= kFringeResidual) continue;
      for (int i : parts[a]) part_of[i] = host, parts[host].push_back(i);
      parts[a].clear();
      std::sort(parts[host].begin(), parts[host].end());
    }
  }

  // Tiny components are noise or leftover fringe.
  void drop_noise() {
    double side = std::min(w_, h_) * data::radius(data::Size::small);
    double min_area = kMinAreaFraction * geometry(data::ShapeKind::triangle).area * side * side;
    for (Component& c : comps_)
      if (c.pixels.size() < min_area) {
        c.alive = false;
        for (int i : c.pixels) comp_of_[i] = -1;
      }
  }

  // Soft mask of component k's pixels `own` (alpha >= 0.5 by construction) plus the undecided
  // pixels within 2 px (edges with alpha < 0.5); other components' pixels count as 0.
  AlphaWindow window(int k, const std::vector<int>& own) const {
    const Component& c = comps_[k];
    int x0 = w_, y0 = h_, x1 = 0, y1 = 0;
    for (int i : own)
      x0 = std::min(x0, x_of(i)), x1 = std::max(x1, x_of(i)), y0 = std::min(y0, y_of(i)),
      y1 = std::max(y1, y_of(i));
    AlphaWindow win;
    win.x0 = std::max(0, x0 - 2), win.y0 = std::max(0, y0 - 2);
    win.w = std::min(w_, x1 + 3) - win.x0, win.h = std::min(h_, y1 + 3) - win.y0;
    win.alpha.assign(static_cast<size_t>(win.w) * win.h, 0.f);
    std::vector<uint8_t> mine(static_cast<size_t>(win.w) * win.h, 0);
    for (int i : own) mine[static_cast<size_t>(y_of(i) - win.y0) * win.w + x_of(i) - win.x0] = 1;
    for (int j = 0; j < win.h; ++j)
      for (int i = 0; i < win.w; ++i) {
        size_t wi = static_cast<size_t>(j) * win.w + i;
        int idx = (win.y0 + j) * w_ + win.x0 + i;
        if (!mine[wi] && comp_of_[idx] >= 0) continue;
        Unmixed u = unmix(px_[idx], bg_.predict(idx), c.measured);
        if (mine[wi])
          win.alpha[wi] = std::max(u.alpha, 0.5f);
        else if (u.alpha >= 0.15f && u.residual < kMaxResidual)
          win.alpha[wi] = u.alpha;
      }
    return win;
  }

  // Deterministic k-means of pixel positions (farthest-point start, 10 rounds).
  std::vector<std::vector<int>> kmeans(const std::vector<int>& pixels, int k) const {
    std::vector<std::array<double, 2>> centers = {
        {double(x_of(pixels[0])), double(y_of(pixels[0]))}};
    auto d2 = [&](int i, const std::array<double, 2>& c) {
      double dx = x_of(i) - c[0], dy = y_of(i) - c[1];
      return dx * dx + dy * dy;
    };
    while (int(centers.size()) < k) {
      int far = pixels[0];
      double best = -1;
      for (int i : pixels) {
        double m = std::numeric_limits<double>::infinity();
        for (const auto& c : centers) m = std::min(m, d2(i, c));
        if (m > best) best = m, far = i;
      }
      centers.push_back({double(x_of(far)), double(y_of(far))});
    }
    std::vector<std::vector<int>> groups;
    for (int round = 0; round < 10; ++round) {
      groups.assign(k, {});
      for (int i : pixels) {
        int arg = 0;
        for (int c = 1; c < k; ++c)
          if (d2(i, centers[c]) < d2(i, centers[arg])) arg = c;
        groups[arg].push_back(i);
      }
      for (int c = 0; c < k; ++c) {
        if (groups[c].empty()) continue;
        double sx = 0, sy = 0;
        for (int i : groups[c]) sx += x_of(i), sy += y_of(i);
        centers[c] = {sx / groups[c].size(), sy / groups[c].size()};
      }
    }
    return groups;
  }

  Detection make_detection(const Component& c, const ShapeFit& fit) const {
    Detection d;
    d.shape = fit.shape;
    d.color = c.color;
    d.center = {fit.cx / w_, fit.cy / h_};
    d.radius = fit.r / w_;
    d.size = size_class(d.radius);
    d.region = region_of(d.center);
    d.confidence = fit.iou;
    d.margin = fit.iou - fit.runner_up_iou;
    d.measured = to_rgb(c.measured);
    return d;
  }

  // Step 4: the shape fit of component k; 2 or 3 same-shape, same-size copies instead when
  // blurred copies touch and splitting fits clearly better.
  std::vector<Detection> detect(int k) {
    const Component& c = comps_[k];
    AlphaWindow whole = window(k, c.pixels);
    ShapeFit single = fit_shape(whole);
    std::vector<Detection> best = {make_detection(c, single)};
    double side = std::min(w_, h_) * data::radius(data::Size::small);
    double small_area = geometry(data::ShapeKind::triangle).area * side * side;
    double best_iou = single.iou;
    for (int parts = 2; parts <= 3 && single.iou < kSplitBelow; ++parts) {
      if (whole.sum() < parts * 0.8 * small_area) break;
      std::vector<Detection> split;
      double iou = 0, area = 0;
      bool same = true;
      for (const std::vector<int>& g : kmeans(c.pixels, parts)) {
        if (g.empty()) {
          same = false;
          break;
        }
        AlphaWindow win = window(k, g);
        ShapeFit f = fit_shape(win);
        split.push_back(make_detection(c, f));
        same = same && f.shape == split[0].shape && split.back().size == split[0].size;
        iou += f.iou * win.sum(), area += win.sum();
      }
      if (same && area > 0 && iou / area > best_iou + kSplitGain)
        best = split, best_iou = iou / area;
    }
    return best;
  }

  int w_, h_;
  std::vector<Rgbf> px_;
  BackgroundFit bg_;
  std::vector<Color> cands_;
  std::vector<int> label_, comp_of_;
  std::vector<Component> comps_;
};

}  // namespace

Reading read_scene(const ImageU8& img) {
  KILN_ARG(img.channels == 3 || img.channels == 4, "read_scene", "needs an RGB(A) image, got ",
           img.channels, " channels");
  KILN_ARG(img.width >= 16 && img.width == img.height, "read_scene",
           "needs a square image of side >= 16, got ", img.width, "x", img.height);
  KILN_ARG(img.pixels.size() == static_cast<size_t>(img.width) * img.height * img.channels,
           "read_scene", "pixel buffer size does not match ", img.width, "x", img.height, "x",
           img.channels);
  return Reader(img).read();
}

std::vector<Detection> read_objects(const ImageU8& img) {
  return read_scene(img).objects;
}

data::Size size_class(double radius) {
  // Boundaries at the geometric means of 0.07 / 0.10 / 0.14: 0.0837 and 0.1183.
  double r0 = data::radius(data::Size::small), r1 = data::radius(data::Size::medium),
         r2 = data::radius(data::Size::large);
  if (radius < std::sqrt(r0 * r1)) return data::Size::small;
  return radius < std::sqrt(r1 * r2) ? data::Size::medium : data::Size::large;
}

data::Region region_of(data::Point p) {
  int col = std::clamp(static_cast<int>(std::floor(p.x * 3)), 0, 2);
  int row = std::clamp(static_cast<int>(std::floor(p.y * 3)), 0, 2);
  return static_cast<data::Region>(3 * row + col);
}

}  // namespace kiln::quality
