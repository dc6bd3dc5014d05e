// Procedural, captioned scenes for training and scoring kiln-mini (issue 4, item 1).
//
// A Scene is a background plus one to three object groups; a group is one shape in one color and
// size, drawn `count` (1..3) times inside one cell of a 3x3 grid of named regions. Everything is a
// pure function of its inputs:
//   sample_scene(seed, options) -> Scene      (std::mt19937_64 with explicit integer mapping,
//                                              never std::*_distribution, whose output differs
//                                              between standard libraries)
//   caption(scene, seed)        -> English    (template chosen from the seed)
//   render(scene, size)         -> RGB pixels (4x4 supersampled, exact IEEE arithmetic)
//   to_json / from_json                       (kept next to every sample, so a generated image
//                                              can be scored against the scene it was asked for)
// so a dataset is reproducible from (first seed, count, size) alone, on any platform.
//
// Coordinates are fractions of the image side, origin top-left, y down. Object centers are
// quantized to multiples of 1/1024 so they round-trip through JSON exactly.
//
// Extending to video and audio (later issues) keeps the same Scene/seed/caption scheme:
//  - Motion: an Object gains an optional `motion` {kind: still|linear|orbit|bounce, direction
//    (a Region to move towards), speed}. sample_scene draws it from the same generator after the
//    static fields (so existing seeds keep their first frame), render() takes a time t in [0, 1]
//    and evaluates centers at t, and captions add verb phrases from the same templates ("a red
//    circle moving to the left", "a blue star bouncing above a green square"). Overlap is then
//    checked along the whole path.
//  - Sound: a parallel AudioScene {tempo, key, a list of voices {instrument, notes | chord,
//    rhythm pattern}} uses the same seed->sample->caption->render->json pipeline ("a slow C major
//    chord on a piano", "three short high notes"); a joint scene for video-with-audio ties a
//    note onset to an object event (appearing, bouncing) by index.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/pipelines/sinks/image_file.hpp"

namespace kiln::data {

using pipelines::ImageU8;

enum class ShapeKind { circle, square, triangle, star, ring, cross, heart, diamond };
inline constexpr int kNumShapes = 8;
enum class Color { red, orange, yellow, green, blue, purple, pink, brown, black, white, gray };
inline constexpr int kNumColors = 11;
enum class Size { small, medium, large };
inline constexpr int kNumSizes = 3;
// Row-major 3x3 grid: index = 3 * row + column.
enum class Region {
  top_left,
  top,
  top_right,
  left,
  center,
  right,
  bottom_left,
  bottom,
  bottom_right
};
inline constexpr int kNumRegions = 9;
enum class BackgroundKind { plain, vertical_gradient, horizontal_gradient, stripes, checker };
inline constexpr int kNumBackgroundKinds = 5;

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

struct Background {
  BackgroundKind kind = BackgroundKind::plain;
  Color a = Color::white;  // plain color; gradient start (top / left); first stripe / square
  Color b = Color::white;  // second color; equal to `a` for plain
  bool operator==(const Background&) const = default;
};

struct Point {
  double x = 0, y = 0;
  bool operator==(const Point&) const = default;
};

struct Object {
  ShapeKind shape = ShapeKind::circle;
  Color color = Color::red;
  Size size = Size::medium;
  Region region = Region::center;  // every center lies in this cell
  std::vector<Point> centers;      // one per copy: count = centers.size(), 1..3
  int count() const { return static_cast<int>(centers.size()); }
  bool operator==(const Object&) const = default;
};

struct Scene {
  Background background;
  std::vector<Object> objects;  // 1..3 groups, each in its own region
  bool operator==(const Scene&) const = default;
};

struct SceneOptions {
  int max_objects = 3;    // object groups per scene, 1..3 (drawn uniformly from 1..max)
  int max_count = 3;      // copies per group, 1..3; copies > 1 are small or medium
  bool gradients = true;  // allow vertical/horizontal gradient backgrounds
  bool textures = true;   // allow stripes/checker backgrounds
};

// Names as used in captions and JSON ("top_left" in JSON, "top left" in captions).
std::string_view name(ShapeKind s);
std::string_view name(Color c);
std::string_view name(Size s);
std::string_view name(Region r);
std::string_view name(BackgroundKind k);
Rgb palette(Color c);
// Radius of the circle that bounds a shape of this size, as a fraction of the image side.
double radius(Size s);

// Whether point (px, py), in units of the bounding radius relative to the shape's center
// (y down), is inside the shape. Every shape lies within the unit disc.
bool shape_contains(ShapeKind s, double px, double py);
// A point of the shape (same units) at least 0.2 radius from its edge: the center for all
// shapes but the ring. Used to check rendered colors.
Point interior_point(ShapeKind s);
// Whether an object of color `c` stands out on `bg`: it is neither background color and, on a
// gradient, at least 80 (RGB distance) from every color of the blend (an orange star would
// vanish halfway along a red-to-yellow gradient).
bool contrasts(Color c, const Background& bg);
// Background color at (x, y) in image fractions, before anti-aliasing.
Rgb background_at(const Background& bg, double x, double y);

// Deterministic scene from `seed`. Objects do not overlap (bounding discs are apart), lie wholly
// inside the image, and contrast with the background (see contrasts()). Throws kiln::Error
// (invalid_argument) for options out of range.
Scene sample_scene(uint64_t seed, const SceneOptions& options = {});

// Plain-English caption naming every object's color and shape (with counts as words) and the
// background; relations ("above", "to the left of", "next to") come from the regions. The
// template and wording are chosen from `seed`.
std::string caption(const Scene& scene, uint64_t seed);

// RGB image of side `size` (16..4096), 4x4 supersampled. Throws kiln::Error on a bad size or an
// invalid scene.
ImageU8 render(const Scene& scene, int size);

nlohmann::json to_json(const Scene& scene);
// Throws kiln::Error (format_error) naming the bad field.
Scene from_json(const nlohmann::json& j);

// One captioned sample: the scene and its caption both drawn from `seed`. A dataset (kiln-scenes)
// or a prompt set (kiln-quality prompts) starting at seed S uses S + i for sample i.
struct Sample {
  uint64_t seed = 0;
  Scene scene;
  std::string caption;
};
Sample make_sample(uint64_t seed, const SceneOptions& options = {});
// {"seed", "caption", "scene"} (kiln-scenes adds "size").
nlohmann::json to_json(const Sample& sample);

// Throws kiln::Error (invalid_argument) when the scene breaks an invariant above (group count,
// copies, centers outside their region or the image, overlaps, no contrast with the background).
void validate(const Scene& scene);

}  // namespace kiln::data
