#include "score.hpp"

#include <sstream>

namespace kiln::quality {

Score score(const data::Scene& wanted, const std::vector<Detection>& found) {
  Score s;
  std::vector<bool> used(found.size(), false);
  for (const data::Object& o : wanted.objects) {
    GroupResult g;
    g.shape = o.shape, g.color = o.color, g.size = o.size, g.region = o.region;
    g.wanted = o.count();
    g.region_ok = g.size_ok = true;
    for (size_t i = 0; i < found.size(); ++i) {
      const Detection& d = found[i];
      g.shape_ok = g.shape_ok || d.shape == o.shape;
      if (d.shape != o.shape || d.color != o.color) continue;
      used[i] = true;
      ++g.found;
      g.region_ok = g.region_ok && d.region == o.region;
      g.size_ok = g.size_ok && d.size == o.size;
    }
    g.color_ok = g.found > 0;
    g.region_ok = g.region_ok && g.found > 0;
    g.size_ok = g.size_ok && g.found > 0;
    g.count_ok = g.found == g.wanted;
    s.groups.push_back(g);
  }
  for (bool u : used) s.extra += !u;
  s.adherent = s.extra == 0;
  for (const GroupResult& g : s.groups) s.adherent = s.adherent && g.count_ok && g.region_ok;
  return s;
}

Score score(const data::Scene& wanted, const Reading& reading) {
  Score s = score(wanted, reading.objects);
  s.background_ok = reading.background.background == wanted.background;
  return s;
}

void Tally::add(const Score& s) {
  ++images;
  adherent += s.adherent;
  with_extra += s.extra > 0;
  background_ok += s.background_ok;
  for (const GroupResult& g : s.groups) {
    ++groups;
    shape += g.shape_ok, color += g.color_ok, count += g.count_ok, region += g.region_ok,
        size += g.size_ok;
  }
}

nlohmann::json Tally::to_json() const {
  auto frac = [](int k, int n) { return n ? double(k) / n : 0.0; };
  return {{"images", images},
          {"groups", groups},
          {"adherence", frac(adherent, images)},
          {"shape", frac(shape, groups)},
          {"color", frac(color, groups)},
          {"count", frac(count, groups)},
          {"region", frac(region, groups)},
          {"size", frac(size, groups)},
          {"images_with_extra_objects", frac(with_extra, images)},
          {"background", frac(background_ok, images)}};
}

std::string Tally::summary() const {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  auto pct = [](int k, int n) { return n ? 100.0 * k / n : 0.0; };
  os << "images " << images << ", object groups " << groups << "\n"
     << "  adherence    " << pct(adherent, images) << " % (" << adherent << "/" << images << ")\n"
     << "  shape        " << pct(shape, groups) << " %\n"
     << "  color        " << pct(color, groups) << " %\n"
     << "  count        " << pct(count, groups) << " %\n"
     << "  region       " << pct(region, groups) << " %\n"
     << "  size         " << pct(size, groups) << " % (not part of adherence)\n"
     << "  extra objs   " << pct(with_extra, images) << " % of images\n"
     << "  background   " << pct(background_ok, images) << " % (not part of adherence)\n";
  return os.str();
}

nlohmann::json to_json(const Detection& d) {
  return {{"shape", data::name(d.shape)},
          {"color", data::name(d.color)},
          {"size", data::name(d.size)},
          {"region", data::name(d.region)},
          {"center", {d.center.x, d.center.y}},
          {"radius", d.radius},
          {"confidence", d.confidence},
          {"margin", d.margin},
          {"measured_rgb", {d.measured.r, d.measured.g, d.measured.b}}};
}

nlohmann::json to_json(const BackgroundReading& b) {
  nlohmann::json colors = nlohmann::json::array({data::name(b.background.a)});
  if (b.background.kind != data::BackgroundKind::plain)
    colors.push_back(data::name(b.background.b));
  return {{"kind", data::name(b.background.kind)},
          {"colors", colors},
          {"inlier_fraction", b.inlier_fraction}};
}

nlohmann::json to_json(const Score& s) {
  nlohmann::json groups = nlohmann::json::array();
  for (const GroupResult& g : s.groups)
    groups.push_back({{"shape", data::name(g.shape)},
                      {"color", data::name(g.color)},
                      {"size", data::name(g.size)},
                      {"region", data::name(g.region)},
                      {"wanted", g.wanted},
                      {"found", g.found},
                      {"shape_ok", g.shape_ok},
                      {"color_ok", g.color_ok},
                      {"count_ok", g.count_ok},
                      {"region_ok", g.region_ok},
                      {"size_ok", g.size_ok}});
  return {{"adherent", s.adherent},
          {"extra", s.extra},
          {"background_ok", s.background_ok},
          {"groups", groups}};
}

}  // namespace kiln::quality
