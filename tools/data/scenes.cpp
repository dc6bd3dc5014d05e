#include "scenes.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <random>

#include "kiln/core/error.hpp"

namespace kiln::data {
namespace {

constexpr std::array<std::string_view, kNumShapes> kShapeNames = {
    "circle", "square", "triangle", "star", "ring", "cross", "heart", "diamond"};
constexpr std::array<std::string_view, kNumShapes> kShapePlurals = {
    "circles", "squares", "triangles", "stars", "rings", "crosses", "hearts", "diamonds"};
constexpr std::array<std::string_view, kNumColors> kColorNames = {
    "red",  "orange", "yellow", "green", "blue", "purple",
    "pink", "brown",  "black",  "white", "gray"};
// Chosen so that any two entries are at least ~80 apart in RGB (orange/yellow is the closest).
constexpr std::array<Rgb, kNumColors> kPalette = {{{220, 30, 30},
                                                   {245, 140, 20},
                                                   {245, 220, 30},
                                                   {40, 170, 60},
                                                   {30, 80, 220},
                                                   {140, 50, 190},
                                                   {245, 130, 190},
                                                   {130, 80, 40},
                                                   {20, 20, 20},
                                                   {245, 245, 245},
                                                   {128, 128, 128}}};
constexpr std::array<std::string_view, kNumSizes> kSizeNames = {"small", "medium", "large"};
// Bounding radius per size, fraction of the image side. A large disc (0.28 across) fits in a
// 1/3 cell; at 64 px a small shape is 9 px across, about the least a star stays a star at.
constexpr std::array<double, kNumSizes> kRadius = {0.07, 0.10, 0.14};
constexpr std::array<std::string_view, kNumRegions> kRegionNames = {
    "top_left", "top",         "top_right", "left",        "center",
    "right",    "bottom_left", "bottom",    "bottom_right"};
// Two wordings per region, picked by the caption seed.
constexpr std::array<std::array<std::string_view, 2>, kNumRegions> kRegionPhrases = {{
    {"in the top left corner", "at the top left"},
    {"at the top", "near the top"},
    {"in the top right corner", "at the top right"},
    {"on the left", "on the left side"},
    {"in the center", "in the middle"},
    {"on the right", "on the right side"},
    {"in the bottom left corner", "at the bottom left"},
    {"at the bottom", "near the bottom"},
    {"in the bottom right corner", "at the bottom right"},
}};
constexpr std::array<std::string_view, kNumBackgroundKinds> kBackgroundNames = {
    "plain", "vertical_gradient", "horizontal_gradient", "stripes", "checker"};

constexpr double kCell = 1.0 / 3.0;
// Centers keep 1/24 of the image away from their cell's borders, so the region a reader sees is
// not a coin toss at the boundary.
constexpr double kCellMargin = 1.0 / 24.0;
// Minimum gap between bounding discs of different copies/objects (fraction of the side).
constexpr double kGap = 0.02;
constexpr int kQuant = 1024;  // centers are k / 1024: exact in binary, exact through JSON
constexpr int kBands = 8;     // stripes / checker periods across the image

// ---- deterministic integer -> range mapping (no std::*_distribution) ----
// Modulo bias is below 2^-60 for our tiny ranges.
int below(std::mt19937_64& rng, int n) {
  return static_cast<int>(rng() % static_cast<uint64_t>(n));
}
int in_range(std::mt19937_64& rng, int lo, int hi) {
  return lo + below(rng, hi - lo + 1);
}

template <typename E>
E parse_enum(const nlohmann::json& j, const char* field, std::string_view (*namer)(E), int n) {
  if (!j.is_string()) fail(Status::format_error, str(field, " must be a string"), "scene json");
  const auto& s = j.get_ref<const std::string&>();
  for (int i = 0; i < n; ++i)
    if (namer(static_cast<E>(i)) == s) return static_cast<E>(i);
  fail(Status::format_error, str("unknown ", field, " '", s, "'"), "scene json");
}

int row_of(Region r) {
  return static_cast<int>(r) / 3;
}
int col_of(Region r) {
  return static_cast<int>(r) % 3;
}

// Inclusive range of quantized center coordinates along one axis for a cell and radius.
std::pair<int, int> center_range(int cell, double r) {
  double lo = std::max(cell * kCell + kCellMargin, r);
  double hi = std::min((cell + 1) * kCell - kCellMargin, 1.0 - r);
  return {static_cast<int>(std::ceil(lo * kQuant)), static_cast<int>(std::floor(hi * kQuant))};
}

bool discs_apart(Point a, double ra, Point b, double rb) {
  double dx = a.x - b.x, dy = a.y - b.y, d = ra + rb + kGap;
  return dx * dx + dy * dy >= d * d;
}

// Places `o.centers` (count copies) in o.region, apart from `placed` and from each other.
bool place(std::mt19937_64& rng, Object& o, int count,
           const std::vector<std::pair<Point, double>>& placed) {
  double r = radius(o.size);
  auto [x0, x1] = center_range(col_of(o.region), r);
  auto [y0, y1] = center_range(row_of(o.region), r);
  if (x0 > x1 || y0 > y1) return false;
  o.centers.clear();
  for (int tries = 0; tries < 200 && o.count() < count; ++tries) {
    Point p{static_cast<double>(in_range(rng, x0, x1)) / kQuant,
            static_cast<double>(in_range(rng, y0, y1)) / kQuant};
    bool ok = std::all_of(placed.begin(), placed.end(),
                          [&](const auto& q) { return discs_apart(p, r, q.first, q.second); }) &&
              std::all_of(o.centers.begin(), o.centers.end(),
                          [&](const Point& q) { return discs_apart(p, r, q, r); });
    if (ok) o.centers.push_back(p);
  }
  return o.count() == count;
}

std::string article_for(std::string_view next) {
  return std::string(
      next.empty() || std::string_view("aeiou").find(next[0]) == std::string_view::npos ? "a"
                                                                                        : "an");
}

// "a small red circle", "two blue stars" (size omitted when !with_size).
std::string noun_phrase(const Object& o, bool with_size) {
  std::string adjectives;
  if (with_size) adjectives.append(name(o.size)).append(" ");
  adjectives.append(name(o.color));
  auto shape = static_cast<int>(o.shape);
  static constexpr std::array<std::string_view, 4> kCounts = {"", "", "two", "three"};
  if (o.count() == 1) return str(article_for(adjectives), " ", adjectives, " ", kShapeNames[shape]);
  return str(kCounts[o.count()], " ", adjectives, " ", kShapePlurals[shape]);
}

// Background without article: "yellow background", "red and white striped background".
std::string background_phrase(const Background& bg, int variant) {
  auto a = name(bg.a), b = name(bg.b);
  switch (bg.kind) {
    case BackgroundKind::plain:
      return str(a, " background");
    case BackgroundKind::vertical_gradient:
      return variant ? str("background fading from ", a, " at the top to ", b, " at the bottom")
                     : str(a, " to ", b, " gradient background");
    case BackgroundKind::horizontal_gradient:
      return variant ? str("background fading from ", a, " on the left to ", b, " on the right")
                     : str(a, " to ", b, " gradient background");
    case BackgroundKind::stripes:
      return str(a, " and ", b, " striped background");
    case BackgroundKind::checker:
      return str(a, " and ", b, " checkered background");
  }
  return {};
}

// Where `a` is relative to `b`: "above", "below", "to the left of", "to the right of",
// "next to" (same row, adjacent columns, when `loose`). Diagonal pairs use the vertical relation.
std::string relation(Region a, Region b, bool loose) {
  int dr = row_of(a) - row_of(b), dc = col_of(a) - col_of(b);
  if (dr != 0) return dr < 0 ? "above" : "below";
  if (loose && std::abs(dc) == 1) return "next to";
  return dc < 0 ? "to the left of" : "to the right of";
}

std::string join_and(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += (i + 1 == parts.size()) ? (parts.size() > 2 ? ", and " : " and ") : ", ";
    out += parts[i];
  }
  return out;
}

Rgb mix(Rgb a, Rgb b, double t) {
  auto m = [t](uint8_t u, uint8_t v) {
    return static_cast<uint8_t>(std::floor(u + (static_cast<double>(v) - u) * t + 0.5));
  };
  return {m(a.r, b.r), m(a.g, b.g), m(a.b, b.b)};
}

// Star outline: 5 outer points (radius 1, first at the top) and 5 inner ones (radius 0.45),
// as literal constants so no libm sin/cos can differ between platforms.
constexpr double kStarInner = 0.45;
constexpr std::array<Point, 10> kStar = {{
    {0.0, -1.0},
    {0.5877852522924731 * kStarInner, -0.8090169943749475 * kStarInner},
    {0.9510565162951535, -0.3090169943749474},
    {0.9510565162951535 * kStarInner, 0.3090169943749474 * kStarInner},
    {0.5877852522924731, 0.8090169943749475},
    {0.0, kStarInner},
    {-0.5877852522924731, 0.8090169943749475},
    {-0.9510565162951535 * kStarInner, 0.3090169943749474 * kStarInner},
    {-0.9510565162951535, -0.3090169943749474},
    {-0.5877852522924731 * kStarInner, -0.8090169943749475 * kStarInner},
}};

bool in_polygon(const Point* v, int n, double x, double y) {
  bool inside = false;
  for (int i = 0, j = n - 1; i < n; j = i++) {
    if ((v[i].y > y) != (v[j].y > y) &&
        x < (v[j].x - v[i].x) * (y - v[i].y) / (v[j].y - v[i].y) + v[i].x)
      inside = !inside;
  }
  return inside;
}

}  // namespace

std::string_view name(ShapeKind s) {
  return kShapeNames.at(static_cast<size_t>(s));
}
std::string_view name(Color c) {
  return kColorNames.at(static_cast<size_t>(c));
}
std::string_view name(Size s) {
  return kSizeNames.at(static_cast<size_t>(s));
}
std::string_view name(Region r) {
  return kRegionNames.at(static_cast<size_t>(r));
}
std::string_view name(BackgroundKind k) {
  return kBackgroundNames.at(static_cast<size_t>(k));
}
Rgb palette(Color c) {
  return kPalette.at(static_cast<size_t>(c));
}
double radius(Size s) {
  return kRadius.at(static_cast<size_t>(s));
}

bool shape_contains(ShapeKind s, double px, double py) {
  double ax = std::abs(px), ay = std::abs(py), d2 = px * px + py * py;
  switch (s) {
    case ShapeKind::circle:
      return d2 <= 1.0;
    case ShapeKind::square:  // half side 0.7: corners at 0.99
      return ax <= 0.7 && ay <= 0.7;
    case ShapeKind::triangle:  // equilateral, inscribed in the unit circle, apex up
      // Edges: base y = 0.5, sides through the apex (0, -1) and (+-sqrt(3)/2, 0.5).
      return py <= 0.5 && 1.7320508075688772 * ax <= py + 1.0;
    case ShapeKind::star:
      return in_polygon(kStar.data(), 10, px, py);
    case ShapeKind::ring:
      return d2 <= 1.0 && d2 >= 0.55 * 0.55;
    case ShapeKind::cross:  // arms 0.64 wide, 1.88 long: corners at 0.993
      return (ax <= 0.32 && ay <= 0.94) || (ay <= 0.32 && ax <= 0.94);
    case ShapeKind::heart: {
      // (x^2 + y^2 - 1)^3 <= x^2 y^3 with y up spans x in [-1.14, 1.14], y in [-1, 1.24];
      // its farthest point from (0, 0.1) is 1.32 away (the upper lobes), so scaled by 1.36 it
      // stays within 0.97 of the center (checked by the shape test).
      double x = px * 1.36, y = -py * 1.36 + 0.1;
      double q = x * x + y * y - 1.0;
      return q * q * q <= x * x * y * y * y;
    }
    case ShapeKind::diamond:
      return ax / 0.7 + ay <= 1.0;
  }
  return false;
}

Point interior_point(ShapeKind s) {
  return s == ShapeKind::ring ? Point{0.775, 0.0} : Point{0.0, 0.0};
}

bool contrasts(Color c, const Background& bg) {
  if (c == bg.a || c == bg.b) return false;
  if (bg.kind != BackgroundKind::vertical_gradient &&
      bg.kind != BackgroundKind::horizontal_gradient)
    return true;
  // Distance from c to the segment a-b in RGB space.
  Rgb p = palette(c), a = palette(bg.a), b = palette(bg.b);
  double ab[3] = {double(b.r) - a.r, double(b.g) - a.g, double(b.b) - a.b};
  double ap[3] = {double(p.r) - a.r, double(p.g) - a.g, double(p.b) - a.b};
  double t = (ab[0] * ap[0] + ab[1] * ap[1] + ab[2] * ap[2]) /
             (ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2]);
  t = std::clamp(t, 0.0, 1.0);
  double d2 = 0;
  for (int k = 0; k < 3; ++k) d2 += (ap[k] - t * ab[k]) * (ap[k] - t * ab[k]);
  return d2 >= 80.0 * 80.0;
}

Rgb background_at(const Background& bg, double x, double y) {
  Rgb a = palette(bg.a), b = palette(bg.b);
  switch (bg.kind) {
    case BackgroundKind::plain:
      return a;
    case BackgroundKind::vertical_gradient:
      return mix(a, b, std::clamp(y, 0.0, 1.0));
    case BackgroundKind::horizontal_gradient:
      return mix(a, b, std::clamp(x, 0.0, 1.0));
    case BackgroundKind::stripes:
      return static_cast<int>(std::floor(y * kBands)) % 2 == 0 ? a : b;
    case BackgroundKind::checker: {
      int k = static_cast<int>(std::floor(x * kBands)) + static_cast<int>(std::floor(y * kBands));
      return k % 2 == 0 ? a : b;
    }
  }
  return a;
}

Scene sample_scene(uint64_t seed, const SceneOptions& options) {
  KILN_ARG(options.max_objects >= 1 && options.max_objects <= 3, "sample_scene",
           "max_objects must be 1..3, got ", options.max_objects);
  KILN_ARG(options.max_count >= 1 && options.max_count <= 3, "sample_scene",
           "max_count must be 1..3, got ", options.max_count);
  std::mt19937_64 rng(seed);
  std::vector<BackgroundKind> kinds = {BackgroundKind::plain};
  if (options.gradients)
    kinds.insert(kinds.end(),
                 {BackgroundKind::vertical_gradient, BackgroundKind::horizontal_gradient});
  if (options.textures)
    kinds.insert(kinds.end(), {BackgroundKind::stripes, BackgroundKind::checker});

  // A failed placement (three copies squeezed into a corner cell) redraws the whole scene from
  // the same stream, so the result stays a function of the seed alone.
  for (int attempt = 0; attempt < 100; ++attempt) {
    Scene scene;
    int n = in_range(rng, 1, options.max_objects);
    Background& bg = scene.background;
    bg.kind = kinds[below(rng, static_cast<int>(kinds.size()))];
    bg.a = static_cast<Color>(below(rng, kNumColors));
    bg.b = bg.a;
    if (bg.kind != BackgroundKind::plain)
      bg.b = static_cast<Color>((static_cast<int>(bg.a) + in_range(rng, 1, kNumColors - 1)) %
                                kNumColors);

    std::array<int, kNumRegions> regions{};
    for (int i = 0; i < kNumRegions; ++i) regions[i] = i;
    for (int i = kNumRegions - 1; i > 0; --i) std::swap(regions[i], regions[below(rng, i + 1)]);

    std::vector<Color> colors;
    for (int c = 0; c < kNumColors; ++c)
      if (contrasts(static_cast<Color>(c), bg)) colors.push_back(static_cast<Color>(c));
    if (colors.empty()) continue;  // no palette color stands out on this gradient: redraw

    std::vector<std::pair<Point, double>> placed;
    bool ok = true;
    for (int i = 0; i < n && ok; ++i) {
      Object o;
      o.region = static_cast<Region>(regions[i]);
      // (shape, color) pairs differ between objects, so a caption names each unambiguously.
      do {
        o.shape = static_cast<ShapeKind>(below(rng, kNumShapes));
        o.color = colors[below(rng, static_cast<int>(colors.size()))];
      } while (std::any_of(scene.objects.begin(), scene.objects.end(), [&](const Object& p) {
        return p.shape == o.shape && p.color == o.color;
      }));
      // One copy half the time; more copies need smaller shapes to fit in one cell.
      int count =
          options.max_count == 1 || below(rng, 2) == 0 ? 1 : in_range(rng, 2, options.max_count);
      o.size = count == 3   ? Size::small
               : count == 2 ? static_cast<Size>(below(rng, 2))
                            : static_cast<Size>(below(rng, kNumSizes));
      ok = place(rng, o, count, placed);
      for (const Point& p : o.centers) placed.emplace_back(p, radius(o.size));
      scene.objects.push_back(std::move(o));
    }
    if (ok) return scene;
  }
  fail(Status::internal, "no placement found in 100 attempts", str("sample_scene seed ", seed));
}

void validate(const Scene& scene) {
  const char* ctx = "scene";
  const auto& objs = scene.objects;
  KILN_ARG(!objs.empty() && objs.size() <= 3, ctx, "needs 1..3 objects, got ", objs.size());
  const Background& bg = scene.background;
  KILN_ARG(bg.kind == BackgroundKind::plain || bg.a != bg.b, ctx,
           "a two-color background needs two different colors, got ", name(bg.a), " twice");
  for (size_t i = 0; i < objs.size(); ++i) {
    const Object& o = objs[i];
    KILN_ARG(o.count() >= 1 && o.count() <= 3, ctx, "object ", i, ": count must be 1..3, got ",
             o.count());
    KILN_ARG(contrasts(o.color, bg), ctx, "object ", i, ": color ", name(o.color),
             " does not stand out on the ", name(bg.kind), " background");
    double r = radius(o.size);
    for (const Point& p : o.centers) {
      KILN_ARG(p.x - r >= 0 && p.x + r <= 1 && p.y - r >= 0 && p.y + r <= 1, ctx, "object ", i,
               ": (", p.x, ", ", p.y, ") radius ", r, " leaves the image");
      int col = std::min(2, static_cast<int>(p.x * 3)),
          row = std::min(2, static_cast<int>(p.y * 3));
      KILN_ARG(3 * row + col == static_cast<int>(o.region), ctx, "object ", i, ": (", p.x, ", ",
               p.y, ") is not in region ", name(o.region));
    }
    for (size_t j = 0; j <= i; ++j) {
      const Object& q = objs[j];
      KILN_ARG(j == i || q.region != o.region, ctx, "objects ", j, " and ", i, " share region ",
               name(o.region));
      for (size_t a = 0; a < o.centers.size(); ++a)
        for (size_t b = 0; b < (j == i ? a : q.centers.size()); ++b) {
          double d = r + radius(q.size), dx = o.centers[a].x - q.centers[b].x,
                 dy = o.centers[a].y - q.centers[b].y;
          KILN_ARG(dx * dx + dy * dy >= d * d, ctx, "objects ", j, " and ", i, " overlap");
        }
    }
  }
}

std::string caption(const Scene& scene, uint64_t seed) {
  validate(scene);
  // A separate stream from sample_scene's, so the same seed may be used for both.
  std::mt19937_64 rng(seed ^ 0x9E3779B97F4A7C15ull);
  const auto& objs = scene.objects;
  int region_variant = below(rng, 2), bg_variant = below(rng, 2);
  std::vector<std::string> np;
  for (const Object& o : objs) np.push_back(noun_phrase(o, below(rng, 3) != 0));
  auto where = [&](size_t i) {
    return std::string(kRegionPhrases[static_cast<int>(objs[i].region)][region_variant]);
  };
  std::string bgp = background_phrase(scene.background, bg_variant);
  std::string a_bgp = article_for(bgp) + " " + bgp;

  std::vector<std::string> placed;  // "a red circle in the center", ...
  for (size_t i = 0; i < objs.size(); ++i) placed.push_back(np[i] + " " + where(i));
  // With two or more objects: the first relative to the second, the third by its region.
  std::string related = placed[0];
  if (objs.size() >= 2) {
    related =
        np[0] + " " + relation(objs[0].region, objs[1].region, below(rng, 2) == 0) + " " + np[1];
    if (objs.size() == 3) related += ", and " + placed[2];
  }
  switch (below(rng, 4)) {
    case 0:  // "two small red circles above a blue square on a yellow background"
      return related + " on " + a_bgp;
    case 1:  // "a green star in the top left corner, gray background"
      return related + ", " + bgp;
    case 2:  // "a yellow background with a red circle in the center and a blue square on the left"
      return a_bgp + " with " + join_and(placed);
    default:  // "a red circle on the left and a blue square at the top on a white background"
      return join_and(placed) + " on " + a_bgp;
  }
}

ImageU8 render(const Scene& scene, int size) {
  KILN_ARG(size >= 16 && size <= 4096, "render", "size must be 16..4096, got ", size);
  validate(scene);
  struct Inst {
    Point c;
    double r;
    ShapeKind shape;
    Rgb color;
  };
  std::vector<Inst> insts;
  for (const Object& o : scene.objects)
    for (const Point& p : o.centers)
      insts.push_back({p, radius(o.size), o.shape, palette(o.color)});

  constexpr int kSub = 4;  // 4x4 supersampling: 16 levels of edge coverage
  ImageU8 img{size, size, 3, std::vector<uint8_t>(static_cast<size_t>(size) * size * 3)};
  for (int py = 0; py < size; ++py)
    for (int px = 0; px < size; ++px) {
      int sum[3] = {0, 0, 0};
      for (int sy = 0; sy < kSub; ++sy)
        for (int sx = 0; sx < kSub; ++sx) {
          double x = (px + (sx + 0.5) / kSub) / size, y = (py + (sy + 0.5) / kSub) / size;
          Rgb c = background_at(scene.background, x, y);
          for (const Inst& in : insts) {
            double dx = (x - in.c.x) / in.r, dy = (y - in.c.y) / in.r;
            if (std::abs(dx) <= 1 && std::abs(dy) <= 1 && shape_contains(in.shape, dx, dy)) {
              c = in.color;
              break;  // bounding discs never overlap
            }
          }
          sum[0] += c.r, sum[1] += c.g, sum[2] += c.b;
        }
      uint8_t* out = &img.pixels[(static_cast<size_t>(py) * size + px) * 3];
      for (int k = 0; k < 3; ++k)
        out[k] = static_cast<uint8_t>((sum[k] + kSub * kSub / 2) / (kSub * kSub));
    }
  return img;
}

nlohmann::json to_json(const Scene& scene) {
  const Background& bg = scene.background;
  nlohmann::json colors = nlohmann::json::array({name(bg.a)});
  if (bg.kind != BackgroundKind::plain) colors.push_back(name(bg.b));
  nlohmann::json objects = nlohmann::json::array();
  for (const Object& o : scene.objects) {
    nlohmann::json centers = nlohmann::json::array();
    for (const Point& p : o.centers) centers.push_back({p.x, p.y});
    objects.push_back({{"shape", name(o.shape)},
                       {"color", name(o.color)},
                       {"size", name(o.size)},
                       {"region", name(o.region)},
                       {"count", o.count()},
                       {"centers", centers}});
  }
  return {{"version", 1},
          {"background", {{"kind", name(bg.kind)}, {"colors", colors}}},
          {"objects", objects}};
}

Sample make_sample(uint64_t seed, const SceneOptions& options) {
  Sample s{seed, sample_scene(seed, options), {}};
  s.caption = caption(s.scene, seed);
  return s;
}

nlohmann::json to_json(const Sample& sample) {
  return {{"seed", sample.seed}, {"caption", sample.caption}, {"scene", to_json(sample.scene)}};
}

Scene from_json(const nlohmann::json& j) {
  const char* ctx = "scene json";
  auto field = [&](const nlohmann::json& obj, const char* key) -> const nlohmann::json& {
    if (!obj.is_object() || !obj.contains(key))
      fail(Status::format_error, str("missing field '", key, "'"), ctx);
    return obj.at(key);
  };
  if (field(j, "version") != 1) fail(Status::format_error, "unsupported version", ctx);
  Scene scene;
  const auto& bgj = field(j, "background");
  Background& bg = scene.background;
  bg.kind =
      parse_enum<BackgroundKind>(field(bgj, "kind"), "background kind", name, kNumBackgroundKinds);
  const auto& colors = field(bgj, "colors");
  size_t want = bg.kind == BackgroundKind::plain ? 1 : 2;
  if (!colors.is_array() || colors.size() != want)
    fail(Status::format_error, str("background '", name(bg.kind), "' needs ", want, " colors"),
         ctx);
  bg.a = parse_enum<Color>(colors[0], "color", name, kNumColors);
  bg.b = want == 2 ? parse_enum<Color>(colors[1], "color", name, kNumColors) : bg.a;
  const auto& objs = field(j, "objects");
  if (!objs.is_array()) fail(Status::format_error, "objects must be an array", ctx);
  for (const auto& oj : objs) {
    Object o;
    o.shape = parse_enum<ShapeKind>(field(oj, "shape"), "shape", name, kNumShapes);
    o.color = parse_enum<Color>(field(oj, "color"), "color", name, kNumColors);
    o.size = parse_enum<Size>(field(oj, "size"), "size", name, kNumSizes);
    o.region = parse_enum<Region>(field(oj, "region"), "region", name, kNumRegions);
    const auto& centers = field(oj, "centers");
    const auto& count = field(oj, "count");
    if (!centers.is_array() || !count.is_number_integer() || count != centers.size())
      fail(Status::format_error, "count must be an integer equal to the number of centers", ctx);
    for (const auto& c : centers) {
      if (!c.is_array() || c.size() != 2 || !c[0].is_number() || !c[1].is_number())
        fail(Status::format_error, "a center must be [x, y]", ctx);
      o.centers.push_back({c[0].get<double>(), c[1].get<double>()});
    }
    scene.objects.push_back(std::move(o));
  }
  try {
    validate(scene);
  } catch (const Error& e) {
    throw Error(Status::format_error, e.what(), ctx);
  }
  return scene;
}

}  // namespace kiln::data
