// The SVG line chart of `kvscope replay --svg`: document structure, one line
// per series and one marker per measured point, dashes, escaping, nice and
// compact tick labels on linear and log axes, points mapped inside the plot,
// and every spec it refuses.
// Two false positives of GCC 12 inside libstdc++, reported in its headers
// (so silenced for the whole file): -Wmaybe-uninitialized in <regex> under
// ASan at -O2 (GCC bug 105562) and -Wrestrict in std::string concatenation
// at -O3 (GCC bug 105329).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wrestrict"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "svg_chart.hpp"

namespace kvscope::cli {
namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

/// Every match of `pattern` in `text`, as the list of its capture groups.
std::vector<std::vector<std::string>> matches(const std::string& text, const std::string& pattern) {
  std::vector<std::vector<std::string>> out;
  const std::regex re(pattern);
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    std::vector<std::string> groups;
    for (std::size_t i = 1; i < it->size(); ++i) groups.push_back((*it)[i].str());
    out.push_back(groups);
  }
  return out;
}

struct Point {
  double x = 0;
  double y = 0;
};

std::vector<Point> markers(const std::string& svg) {
  std::vector<Point> out;
  for (const auto& g :
       matches(svg, R"re(<circle class="marker" cx="([-0-9.]+)" cy="([-0-9.]+)")re"))
    out.push_back({std::stod(g[0]), std::stod(g[1])});
  return out;
}

struct Box {
  double left = 0, top = 0, right = 0, bottom = 0;
};

Box plot_area(const std::string& svg) {
  const std::string number = "\"([-0-9.]+)\"";
  const auto m = matches(svg, "<rect class=\"plot-area\" x=" + number + " y=" + number +
                                  " width=" + number + " height=" + number);
  if (m.size() != 1) throw std::runtime_error("no single plot-area rect");
  const double x = std::stod(m[0][0]);
  const double y = std::stod(m[0][1]);
  return {x, y, x + std::stod(m[0][2]), y + std::stod(m[0][3])};
}

std::vector<std::string> tick_labels(const std::string& svg, const std::string& axis) {
  std::vector<std::string> out;
  for (const auto& g : matches(svg, "<text class=\"" + axis + "-tick\"[^>]*>([^<]*)</text>"))
    out.push_back(g[0]);
  return out;
}

/// The value of a compact label: "2.5k" is 2500.
double label_value(const std::string& label) {
  std::size_t used = 0;
  const double v = std::stod(label, &used);
  const std::string suffix = label.substr(used);
  if (suffix.empty()) return v;
  if (suffix == "k") return v * 1e3;
  if (suffix == "M") return v * 1e6;
  if (suffix == "G") return v * 1e9;
  if (suffix == "T") return v * 1e12;
  throw std::runtime_error("unexpected label " + label);
}

/// Whether `step` is 1, 2 or 5 times a power of ten.
bool is_nice(double step) {
  const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
  for (const double m : {1.0, 2.0, 5.0, 10.0})
    if (std::abs(mantissa - m) < 1e-6) return true;
  return false;
}

std::vector<std::string> polylines(const std::string& svg) {
  std::vector<std::string> out;
  for (const auto& g : matches(svg, R"re((<polyline [^>]*/>))re")) out.push_back(g[0]);
  return out;
}

ChartSeries series(std::string name, std::vector<ChartPoint> points, bool markers = true,
                   bool dashed = false) {
  return ChartSeries{std::move(name), std::move(points), markers, dashed};
}

/// Two policies measured at four capacities and a dashed prediction.
ChartSpec replay_chart() {
  ChartSpec spec;
  spec.title = "hit ratio vs capacity";
  spec.x_label = "capacity (blocks)";
  spec.y_label = "token hit ratio";
  spec.log_x = true;
  spec.y_min = 0;
  spec.y_max = 1;
  spec.series.push_back(series("lru", {{16000, 0.7}, {1000, 0.2}, {4000, 0.5}, {2000, 0.3}}));
  spec.series.push_back(series("arc", {{1000, 0.25}, {2000, 0.35}, {4000, 0.55}, {16000, 0.72}}));
  spec.series.push_back(
      series("predicted", {{1000, 0.21}, {3000, 0.4}, {9000, 0.6}, {20000, 0.74}}, false, true));
  return spec;
}

TEST(SvgChart, RendersOneSvgDocument) {
  const std::string svg = render_svg(replay_chart());
  EXPECT_EQ(svg.rfind("<svg ", 0), 0u) << svg.substr(0, 80);
  ASSERT_GE(svg.size(), 7u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_EQ(count(svg, "<svg"), 1u);
  EXPECT_EQ(count(svg, "</svg>"), 1u);
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("width=\"800\" height=\"500\""), std::string::npos);
  for (const char* text : {"hit ratio vs capacity", "capacity (blocks)", "token hit ratio"})
    EXPECT_NE(svg.find(text), std::string::npos) << text;
}

TEST(SvgChart, DrawsOneLinePerSeriesAndOneMarkerPerMeasuredPoint) {
  const std::string svg = render_svg(replay_chart());
  EXPECT_EQ(polylines(svg).size(), 3u);
  // The prediction has no markers: 4 + 4 circles, not 12.
  EXPECT_EQ(markers(svg).size(), 8u);
}

TEST(SvgChart, DashesOnlyTheDashedSeries) {
  const std::vector<std::string> lines = polylines(render_svg(replay_chart()));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].find("stroke-dasharray"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1].find("stroke-dasharray"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("stroke-dasharray"), std::string::npos) << lines[2];
}

TEST(SvgChart, DrawsPointsSortedByX) {
  ChartSpec spec;
  spec.series.push_back(series("s", {{3, 1}, {1, 2}, {2, 3}}));
  const std::vector<Point> m = markers(render_svg(spec));
  ASSERT_EQ(m.size(), 3u);
  EXPECT_LT(m[0].x, m[1].x);
  EXPECT_LT(m[1].x, m[2].x);
  // x = 1 carries y = 2, higher on the page (smaller cy) than y = 1 at x = 3.
  EXPECT_LT(m[0].y, m[2].y);
}

TEST(SvgChart, GivesEachSeriesAPaletteColourCyclingAfterEight) {
  ChartSpec spec;
  for (int i = 0; i < 9; ++i)
    spec.series.push_back(series("s" + std::to_string(i), {{1, 1.0 * i}}));
  std::vector<std::string> colours;
  for (const std::string& line : polylines(render_svg(spec)))
    colours.push_back(matches(line, R"re(stroke="(#[0-9A-Fa-f]{6})")re").at(0).at(0));
  ASSERT_EQ(colours.size(), 9u);
  EXPECT_EQ(std::set<std::string>(colours.begin(), colours.begin() + 8).size(), 8u);
  EXPECT_EQ(colours[8], colours[0]);
}

TEST(SvgChart, EscapesEveryText) {
  ChartSpec spec = replay_chart();
  spec.title = "\"quoted\" & 'single'";
  spec.x_label = "x <blocks>";
  spec.y_label = "a&b";
  spec.series[0].name = "lru & <friends>";
  const std::string svg = render_svg(spec);
  EXPECT_NE(svg.find("&quot;quoted&quot; &amp; &apos;single&apos;"), std::string::npos);
  EXPECT_NE(svg.find("x &lt;blocks&gt;"), std::string::npos);
  EXPECT_NE(svg.find("a&amp;b"), std::string::npos);
  EXPECT_NE(svg.find("lru &amp; &lt;friends&gt;"), std::string::npos);
  for (const char* raw : {"<friends>", "<blocks>", "a&b", "& 'single'", "lru & "})
    EXPECT_EQ(svg.find(raw), std::string::npos) << raw;
}

TEST(SvgChart, DropsControlCharactersXmlForbids) {
  ChartSpec spec = replay_chart();
  spec.series[0].name = std::string("bell\x07here");
  const std::string svg = render_svg(spec);
  EXPECT_EQ(svg.find('\x07'), std::string::npos);
  EXPECT_NE(svg.find("bellhere"), std::string::npos);
}

TEST(SvgChart, LogAxisLabelsDecadesAndTwoAndFiveWhenFewDecades) {
  const std::vector<std::string> labels = tick_labels(render_svg(replay_chart()), "x");
  const std::set<std::string> got(labels.begin(), labels.end());
  for (const char* want : {"1k", "2k", "5k", "10k", "20k"}) EXPECT_TRUE(got.count(want)) << want;
  EXPECT_FALSE(got.count("3k"));
}

TEST(SvgChart, LogAxisOverManyDecadesLabelsDecadesOnly) {
  ChartSpec spec;
  spec.log_x = true;
  spec.series.push_back(series("s", {{1, 0.1}, {1e6, 0.9}}));
  const std::vector<std::string> labels = tick_labels(render_svg(spec), "x");
  EXPECT_EQ(labels, (std::vector<std::string>{"1", "10", "100", "1k", "10k", "100k", "1M"}));
}

TEST(SvgChart, LogAxisThinsDecadeLabelsWhenTheyWouldCrowd) {
  ChartSpec spec;
  spec.width = 300;
  spec.log_x = true;
  spec.series.push_back(series("s", {{1e-3, 0.1}, {1e12, 0.9}}));
  const std::vector<std::string> labels = tick_labels(render_svg(spec), "x");
  ASSERT_GE(labels.size(), 2u);
  EXPECT_LE(labels.size(), 6u) << ::testing::PrintToString(labels);
  for (const std::string& l : labels) {
    const double e = std::log10(label_value(l));
    EXPECT_NEAR(e, std::round(e), 1e-9) << l << " is not a decade";
  }
}

TEST(SvgChart, LogAxisWithinOneOctaveStillHasSeveralLabels) {
  ChartSpec spec;
  spec.log_x = true;
  spec.series.push_back(series("s", {{1000, 0.1}, {1300, 0.9}}));
  const std::vector<std::string> labels = tick_labels(render_svg(spec), "x");
  ASSERT_GE(labels.size(), 2u);
  for (const std::string& l : labels) {
    EXPECT_GE(label_value(l), 900) << l;
    EXPECT_LE(label_value(l), 1400) << l;
  }
}

TEST(SvgChart, LinearTicksAreEvenlySpacedNiceSteps) {
  const std::vector<std::pair<double, double>> ranges = {
      {0, 1}, {0, 0.35}, {0.31, 0.74}, {-3, 17}, {0, 2'000'000}, {990, 1010}, {1e-4, 3e-4}};
  for (const auto& [lo, hi] : ranges) {
    ChartSpec spec;
    spec.series.push_back(series("s", {{lo, lo}, {hi, hi}}));
    const std::string svg = render_svg(spec);
    for (const char* axis : {"x", "y"}) {
      const std::vector<std::string> labels = tick_labels(svg, axis);
      ASSERT_GE(labels.size(), 3u) << axis << " " << lo << ".." << hi;
      const double step = label_value(labels[1]) - label_value(labels[0]);
      EXPECT_TRUE(is_nice(step)) << axis << " step " << step << " for " << lo << ".." << hi;
      for (std::size_t i = 1; i < labels.size(); ++i)
        EXPECT_NEAR(label_value(labels[i]) - label_value(labels[i - 1]), step, step * 1e-6)
            << axis << " " << labels[i - 1] << " -> " << labels[i];
      EXPECT_LE(label_value(labels.front()), lo + step) << axis;
      EXPECT_GE(label_value(labels.back()), hi - step) << axis;
    }
  }
}

TEST(SvgChart, TickLabelsAreCompact) {
  ChartSpec spec;
  spec.series.push_back(series("s", {{0, 0}, {2'000'000, 0.25}}));
  spec.y_min = 0;
  spec.y_max = 0.25;
  const std::string svg = render_svg(spec);
  const std::vector<std::string> x = tick_labels(svg, "x");
  const std::set<std::string> y = [&] {
    const auto v = tick_labels(svg, "y");
    return std::set<std::string>(v.begin(), v.end());
  }();
  EXPECT_TRUE(std::find(x.begin(), x.end(), "1M") != x.end()) << ::testing::PrintToString(x);
  EXPECT_TRUE(std::find(x.begin(), x.end(), "2M") != x.end()) << ::testing::PrintToString(x);
  for (const std::string& l : x) EXPECT_EQ(l.find("000"), std::string::npos) << l;
  EXPECT_TRUE(y.count("0"));
  EXPECT_TRUE(y.count("0.25")) << ::testing::PrintToString(y);
  for (const std::string& l : y) {
    EXPECT_EQ(l.find("-0"), std::string::npos) << l;
    EXPECT_LE(l.size(), 4u) << l;
  }
}

TEST(SvgChart, ExtremePointsMapInsideThePlotArea) {
  for (const bool log_x : {false, true}) {
    ChartSpec spec;
    spec.log_x = log_x;
    // Top-left, bottom-right, and one in between.
    spec.series.push_back(series("s", {{10, 0.9}, {50'000, 0.05}, {700, 0.4}}));
    const std::string svg = render_svg(spec);
    const Box plot = plot_area(svg);
    EXPECT_GT(plot.left, 0);
    EXPECT_GT(plot.top, 0);
    EXPECT_LT(plot.right, spec.width);
    EXPECT_LT(plot.bottom, spec.height);
    const std::vector<Point> m = markers(svg);
    ASSERT_EQ(m.size(), 3u);
    for (const Point& p : m) {
      EXPECT_GT(p.x, plot.left) << "log " << log_x;
      EXPECT_LT(p.x, plot.right) << "log " << log_x;
      EXPECT_GT(p.y, plot.top) << "log " << log_x;
      EXPECT_LT(p.y, plot.bottom) << "log " << log_x;
    }
    EXPECT_LT(m[0].x, m[2].x);  // sorted by x: 10, 700, 50'000
    EXPECT_LT(m[0].y, m[2].y);  // y 0.9 above y 0.05
  }
}

TEST(SvgChart, ExplicitYRangeSpansThePlotHeight) {
  ChartSpec spec;
  spec.y_min = 0;
  spec.y_max = 1;
  spec.series.push_back(series("s", {{1, 0}, {2, 1}}));
  const std::string svg = render_svg(spec);
  const Box plot = plot_area(svg);
  const std::vector<Point> m = markers(svg);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_NEAR(m[0].y, plot.bottom, 0.01);
  EXPECT_NEAR(m[1].y, plot.top, 0.01);
}

TEST(SvgChart, OneExplicitBoundBeyondTheDataStillGivesARange) {
  ChartSpec spec;
  spec.y_min = 5;  // all data below it
  spec.series.push_back(series("s", {{1, 1}, {2, 2}}));
  const std::string svg = render_svg(spec);
  const std::vector<std::string> labels = tick_labels(svg, "y");
  ASSERT_GE(labels.size(), 2u);
  EXPECT_GE(label_value(labels.front()), 5);
}

TEST(SvgChart, ASinglePointGetsANonZeroSpanOnEitherAxisKind) {
  for (const bool log_x : {false, true}) {
    for (const double y : {0.0, 0.4}) {
      ChartSpec spec;
      spec.log_x = log_x;
      spec.series.push_back(series("only", {{1000, y}}));
      const std::string svg = render_svg(spec);
      const Box plot = plot_area(svg);
      const std::vector<Point> m = markers(svg);
      ASSERT_EQ(m.size(), 1u);
      EXPECT_NEAR(m[0].x, (plot.left + plot.right) / 2, 0.01) << "log " << log_x;
      EXPECT_NEAR(m[0].y, (plot.top + plot.bottom) / 2, 0.01) << "y " << y;
      EXPECT_GE(tick_labels(svg, "x").size(), 2u) << "log " << log_x;
      EXPECT_GE(tick_labels(svg, "y").size(), 2u) << "y " << y;
      EXPECT_EQ(svg.find("nan"), std::string::npos);
      EXPECT_EQ(svg.find("inf"), std::string::npos);
    }
  }
}

TEST(SvgChart, AOnePointLineWithoutMarkersStillShowsADot) {
  ChartSpec spec;
  spec.series.push_back(series("prediction", {{5, 0.5}}, false, true));
  const std::vector<std::string> lines = polylines(render_svg(spec));
  ASSERT_EQ(lines.size(), 1u);
  // A zero-length segment with round caps: the renderer draws a dot.
  const auto pairs = matches(lines[0], R"re(([-0-9.]+,[-0-9.]+))re");
  EXPECT_EQ(pairs.size(), 2u) << lines[0];
  EXPECT_NE(lines[0].find("stroke-linecap=\"round\""), std::string::npos);
}

TEST(SvgChart, ALegendEntryPerSeriesInOrder) {
  ChartSpec spec = replay_chart();
  const std::string svg = render_svg(spec);
  const auto labels = matches(svg, R"re(<text class="legend-label"[^>]*>([^<]*)</text>)re");
  ASSERT_EQ(labels.size(), 3u);
  EXPECT_EQ(labels[0][0], "lru");
  EXPECT_EQ(labels[1][0], "arc");
  EXPECT_EQ(labels[2][0], "predicted");
  // The legend shows a marker for measured series only.
  EXPECT_EQ(count(svg, "class=\"legend-marker\""), 2u);
}

TEST(SvgChart, AManySeriesLegendGrowsTheDocumentRatherThanCrushingThePlot) {
  ChartSpec spec;
  spec.width = 200;
  spec.height = 200;
  for (int i = 0; i < 12; ++i)
    spec.series.push_back(series("a fairly long series name " + std::to_string(i), {{1, 1.0 * i}}));
  const std::string svg = render_svg(spec);
  const Box plot = plot_area(svg);
  EXPECT_GE(plot.bottom - plot.top, 80);
  const auto height = matches(svg, R"re(<svg [^>]*height="([0-9]+)")re");
  ASSERT_EQ(height.size(), 1u);
  EXPECT_GT(std::stoi(height[0][0]), 200);
}

ChartSpec with(void (*change)(ChartSpec&)) {
  ChartSpec spec = replay_chart();
  change(spec);
  return spec;
}

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(SvgChart, RefusesSpecsItCannotDraw) {
  const std::vector<std::pair<const char*, ChartSpec>> cases = {
      {"no series", with([](ChartSpec& s) { s.series.clear(); })},
      {"empty series", with([](ChartSpec& s) { s.series[1].points.clear(); })},
      {"NaN x", with([](ChartSpec& s) { s.series[0].points[2].x = kNan; })},
      {"NaN y", with([](ChartSpec& s) { s.series[0].points[2].y = kNan; })},
      {"infinite y", with([](ChartSpec& s) { s.series[2].points[0].y = kInf; })},
      {"zero x on log axis", with([](ChartSpec& s) { s.series[0].points[0].x = 0; })},
      {"negative x on log axis", with([](ChartSpec& s) { s.series[1].points[3].x = -5; })},
      {"narrow", with([](ChartSpec& s) { s.width = 199; })},
      {"short", with([](ChartSpec& s) { s.height = 150; })},
      {"y_min == y_max", with([](ChartSpec& s) { s.y_min = s.y_max = 0.5; })},
      {"y_min > y_max", with([](ChartSpec& s) { s.y_min = 1, s.y_max = 0; })},
      {"infinite y_max", with([](ChartSpec& s) { s.y_max = kInf; })},
      {"x range overflows", with([](ChartSpec& s) {
         s.log_x = false;
         s.series[0].points[0].x = -1.5e308;
         s.series[0].points[1].x = 1.5e308;
       })},
  };
  for (const auto& [what, spec] : cases) {
    try {
      render_svg(spec);
      ADD_FAILURE() << what << ": no exception";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()), "") << what;
    }
  }
  // The same chart without the defect renders.
  EXPECT_NO_THROW(render_svg(replay_chart()));
}

TEST(SvgChart, NegativeXIsFineOnALinearAxis) {
  ChartSpec spec;
  spec.series.push_back(series("s", {{-10, 1}, {0, 2}, {10, 3}}));
  EXPECT_EQ(markers(render_svg(spec)).size(), 3u);
}

}  // namespace
}  // namespace kvscope::cli
