#include "svg_chart.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace kvscope::cli {

namespace {

// Okabe-Ito, ordered so the first colours contrast most on white; yellow,
// faint on white, comes last.
constexpr std::array<std::string_view, 8> kPalette = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};
constexpr int kMinSide = 200;
constexpr double kPadFraction = 0.05;  // air around data-derived ranges, each side
constexpr double kMarkerRadius = 3.5;
constexpr double kCharWidth = 7.0;  // rough advance of a 12px sans-serif glyph, for layout only
constexpr double kLegendRowHeight = 18;
constexpr double kLegendSwatch = 26;
constexpr double kSideMargin = 16;
constexpr double kRightMargin = 24;  // room for half of the last x tick label
constexpr double kBelowPlot = 52;    // x tick labels and the x axis label
constexpr double kMinPlotHeight = 80;
constexpr int kMaxTicks = 200;  // bounds every tick loop whatever the range
constexpr std::string_view kClipId = "kvscope-chart-plot";
// Round caps lengthen each dash by the stroke width: drawn about 8 on, 4 off.
constexpr std::string_view kDashed = " stroke-dasharray=\"6 6\"";

struct Range {
  double lo = 0;
  double hi = 0;
};

struct Tick {
  double value = 0;
  std::string label;  // empty: an unlabelled minor tick
};

struct Rect {
  double left = 0, top = 0, right = 0, bottom = 0;
  double width() const { return right - left; }
  double height() const { return bottom - top; }
};

// Maps data values on one axis to pixels; a log axis maps log10 of the value.
struct Axis {
  Range range;
  bool log = false;
  double pixel_lo = 0;  // the pixel of range.lo
  double pixel_hi = 0;  // the pixel of range.hi

  double scaled(double v) const { return log ? std::log10(v) : v; }
  double map(double v) const {
    const double t = (scaled(v) - scaled(range.lo)) / (scaled(range.hi) - scaled(range.lo));
    return pixel_lo + t * (pixel_hi - pixel_lo);
  }
};

// Left end of a legend entry's swatch, and the vertical centre of its row.
struct LegendSlot {
  double x = 0;
  double y = 0;
};

struct Layout {
  int width = 0;
  int height = 0;
  Rect plot;
  std::vector<LegendSlot> legend;
};

template <typename... Args>
void emit(std::string& out, fmt::format_string<Args...> format, Args&&... args) {
  fmt::format_to(std::back_inserter(out), format, std::forward<Args>(args)...);
}

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("render_svg: " + what);
}

std::string escape_xml(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 forbids these control characters even as references.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n' || c == '\r') out += c;
    }
  }
  return out;
}

// ---- validation and ranges ----

void validate_series(const ChartSeries& s, bool log_x) {
  if (s.points.empty()) fail(fmt::format("series \"{}\" has no points", s.name));
  for (const ChartPoint& p : s.points) {
    if (!std::isfinite(p.x) || !std::isfinite(p.y))
      fail(fmt::format("series \"{}\" has a non-finite point ({}, {})", s.name, p.x, p.y));
    if (log_x && p.x <= 0)
      fail(fmt::format("series \"{}\" has x = {} on a log x axis (needs x > 0)", s.name, p.x));
  }
}

void validate(const ChartSpec& spec) {
  if (spec.width < kMinSide || spec.height < kMinSide)
    fail(fmt::format("width and height must be at least {} pixels, got {}x{}", kMinSide, spec.width,
                     spec.height));
  if (spec.series.empty()) fail("no series to draw");
  for (const ChartSeries& s : spec.series) validate_series(s, spec.log_x);
  for (const auto& bound : {spec.y_min, spec.y_max})
    if (bound && !std::isfinite(*bound)) fail("y_min and y_max must be finite");
  if (spec.y_min && spec.y_max && *spec.y_min >= *spec.y_max)
    fail(fmt::format("y_min ({}) must be below y_max ({})", *spec.y_min, *spec.y_max));
}

Range data_range(const ChartSpec& spec, double ChartPoint::*coord) {
  Range r{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  for (const ChartSeries& s : spec.series) {
    for (const ChartPoint& p : s.points) {
      r.lo = std::min(r.lo, p.*coord);
      r.hi = std::max(r.hi, p.*coord);
    }
  }
  return r;
}

// A span too small to tick (one value, or differences lost in rounding)
// gets a sensible one around it.
Range widen_if_flat(Range r, bool log) {
  const double magnitude = std::max(std::abs(r.lo), std::abs(r.hi));
  if (r.hi - r.lo > std::max(magnitude * 1e-9, 1e-200)) return r;
  if (log) return {r.lo / std::sqrt(10.0), r.hi * std::sqrt(10.0)};
  const double half = magnitude == 0 ? 1.0 : magnitude * 0.1;
  return {r.lo - half, r.hi + half};
}

Range pad(Range r, bool log) {
  if (log) {
    const double factor = std::pow(r.hi / r.lo, kPadFraction);
    return {r.lo / factor, r.hi * factor};
  }
  const double d = (r.hi - r.lo) * kPadFraction;
  return {r.lo - d, r.hi + d};
}

Range x_range(const ChartSpec& spec) {
  return pad(widen_if_flat(data_range(spec, &ChartPoint::x), spec.log_x), spec.log_x);
}

Range y_range(const ChartSpec& spec) {
  const Range data = widen_if_flat(data_range(spec, &ChartPoint::y), false);
  const Range padded = pad(data, false);
  Range r{spec.y_min.value_or(padded.lo), spec.y_max.value_or(padded.hi)};
  // One explicit bound beyond all the data: keep it, give the other side the data's span.
  if (r.hi <= r.lo) {
    if (spec.y_min)
      r.hi = r.lo + (data.hi - data.lo);
    else
      r.lo = r.hi - (data.hi - data.lo);
  }
  return r;
}

// Padding can overflow near the ends of double (or underflow to 0 on a log axis).
void check_span(Range r, bool log, std::string_view axis) {
  if (!std::isfinite(r.lo) || !std::isfinite(r.hi) || !std::isfinite(r.hi - r.lo) ||
      (log && r.lo <= 0))
    fail(fmt::format("the {} range is too wide to draw", axis));
}

// ---- ticks ----

std::string trim_zeros(std::string s) {
  if (s.find('.') == std::string::npos) return s;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

// Compact label for a tick value: a k/M/G/T suffix from 1000 up, and as
// many decimals as the spacing `step` between ticks needs, no more.
std::string format_tick(double v, double step) {
  struct Unit {
    double scale;
    std::string_view suffix;
  };
  static constexpr std::array<Unit, 4> kUnits = {Unit{1e12, "T"}, Unit{1e9, "G"}, Unit{1e6, "M"},
                                                 Unit{1e3, "k"}};
  if (std::abs(v) >= 1e15) return fmt::format("{:.3g}", v);
  Unit unit{1, ""};
  for (const Unit& u : kUnits) {
    if (std::abs(v) >= u.scale) {
      unit = u;
      break;
    }
  }
  const int decimals =
      std::clamp(-static_cast<int>(std::floor(std::log10(step / unit.scale) + 1e-9)), 0, 12);
  return trim_zeros(fmt::format("{:.{}f}", v / unit.scale, decimals)) + std::string(unit.suffix);
}

// A step of 1, 2 or 5 x 10^k giving about `target` intervals over `span`.
double nice_step(double span, int target) {
  const double raw = span / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  const double mantissa = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  return mantissa * magnitude;
}

int tick_target(double pixels, double pixels_per_tick) {
  return std::clamp(static_cast<int>(pixels / pixels_per_tick), 2, 10);
}

std::vector<Tick> linear_ticks(Range r, int target) {
  const double step = nice_step(r.hi - r.lo, target);
  const double first = std::ceil(r.lo / step - 1e-9);
  std::vector<Tick> ticks;
  for (int i = 0; i < kMaxTicks; ++i) {
    double v = (first + i) * step;
    if (v > r.hi + step * 1e-9) break;
    if (std::abs(v) < step * 1e-9) v = 0;  // no "-0" label
    ticks.push_back({v, format_tick(v, step)});
  }
  return ticks;
}

bool inside(double v, Range r) { return v >= r.lo * (1 - 1e-9) && v <= r.hi * (1 + 1e-9); }

// Whether a log tick m x 10^e gets a label: decades (every `stride`-th when
// there are many), and 2 and 5 too when the range spans few decades.
bool log_label(int m, int e, int stride, bool label_minors) {
  if (m == 1) return ((e % stride) + stride) % stride == 0;
  return label_minors && (m == 2 || m == 5);
}

std::vector<Tick> log_ticks(Range r, int max_labels) {
  const int e_lo = static_cast<int>(std::floor(std::log10(r.lo)));
  const int e_hi = static_cast<int>(std::ceil(std::log10(r.hi)));
  const double decades = std::log10(r.hi / r.lo);
  const bool label_minors = decades <= 2.5 && decades * 3 <= max_labels;
  const int stride =
      std::max(1, static_cast<int>(std::ceil((e_hi - e_lo) / static_cast<double>(max_labels))));
  const bool minor_marks = e_hi - e_lo <= 6;  // more would blur into a band
  std::vector<Tick> ticks;
  for (int e = e_lo; e <= e_hi; ++e) {
    for (int m = 1; m <= 9; ++m) {
      const double v = m * std::pow(10.0, e);
      const bool labelled = log_label(m, e, stride, label_minors);
      if (!inside(v, r) || (!labelled && m != 1 && !minor_marks)) continue;
      ticks.push_back({v, labelled ? format_tick(v, v) : std::string()});
    }
  }
  return ticks;
}

std::ptrdiff_t labelled(const std::vector<Tick>& ticks) {
  return std::count_if(ticks.begin(), ticks.end(), [](const Tick& t) { return !t.label.empty(); });
}

// Under a factor of ~2 there may be no 1/2/5 value inside: tick linearly.
std::vector<Tick> x_ticks(Range r, bool log, double pixels) {
  if (!log) return linear_ticks(r, tick_target(pixels, 80));
  std::vector<Tick> ticks = log_ticks(r, tick_target(pixels, 60));
  if (labelled(ticks) >= 2) return ticks;
  ticks = linear_ticks(r, tick_target(pixels, 80));
  std::erase_if(ticks, [](const Tick& t) { return t.value <= 0; });
  return ticks;
}

// ---- layout ----

double text_width(std::string_view s) { return static_cast<double>(s.size()) * kCharWidth; }

// Flows legend entries left to right in rows across the document; y is the
// row's offset from the legend's top.
std::vector<LegendSlot> flow_legend(const ChartSpec& spec) {
  std::vector<LegendSlot> slots;
  double x = kSideMargin;
  double y = kLegendRowHeight / 2;
  for (const ChartSeries& s : spec.series) {
    const double w = kLegendSwatch + 6 + text_width(s.name);
    if (x > kSideMargin && x + w > spec.width - kSideMargin) {
      x = kSideMargin;
      y += kLegendRowHeight;
    }
    slots.push_back({x, y});
    x += w + 18;
  }
  return slots;
}

// Top to bottom: title, plot, x tick labels and axis label, legend rows.
Layout vertical_layout(const ChartSpec& spec) {
  Layout l;
  l.width = spec.width;
  l.height = spec.height;
  l.legend = flow_legend(spec);
  const double legend_height = l.legend.back().y + kLegendRowHeight / 2 + 8;
  l.plot.top = spec.title.empty() ? 16 : 44;
  l.plot.bottom = spec.height - legend_height - kBelowPlot;
  if (l.plot.height() < kMinPlotHeight) {
    l.plot.bottom = l.plot.top + kMinPlotHeight;
    l.height = static_cast<int>(std::ceil(l.plot.bottom + kBelowPlot + legend_height));
  }
  for (LegendSlot& slot : l.legend) slot.y += l.plot.bottom + kBelowPlot;
  return l;
}

// The left margin fits the y axis label and the widest y tick label.
void horizontal_layout(Layout& l, const ChartSpec& spec, const std::vector<Tick>& y_ticks) {
  double widest = 0;
  for (const Tick& t : y_ticks) widest = std::max(widest, text_width(t.label));
  l.plot.left = 10 + (spec.y_label.empty() ? 0 : 22) + widest + 8;
  l.plot.right = spec.width - kRightMargin;
}

// ---- drawing ----

void open_document(std::string& out, const ChartSpec& spec, const Layout& l) {
  emit(out,
       "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{0}\" height=\"{1}\" "
       "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n",
       l.width, l.height);
  if (!spec.title.empty()) emit(out, "<title>{}</title>\n", escape_xml(spec.title));
  emit(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  // Clipping keeps points beyond an explicit y bound off the margins; the
  // marker radius of slack keeps markers on the edge whole.
  const double slack = kMarkerRadius + 1;
  emit(out,
       "<defs><clipPath id=\"{}\"><rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" "
       "height=\"{:.2f}\"/></clipPath></defs>\n",
       kClipId, l.plot.left - slack, l.plot.top - slack, l.plot.width() + 2 * slack,
       l.plot.height() + 2 * slack);
}

void draw_x_axis(std::string& out, const std::vector<Tick>& ticks, const Axis& x, const Rect& p) {
  for (const Tick& t : ticks) {
    const double px = x.map(t.value);
    const double len = t.label.empty() ? 3 : 5;
    if (!t.label.empty())
      emit(out,
           "<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{0:.2f}\" y2=\"{2:.2f}\" "
           "stroke=\"#e3e3e3\"/>\n",
           px, p.top, p.bottom);
    emit(out,
         "<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{0:.2f}\" y2=\"{2:.2f}\" stroke=\"#444\"/>\n",
         px, p.bottom, p.bottom + len);
    if (!t.label.empty())
      emit(out,
           "<text class=\"x-tick\" x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"middle\">{}</text>\n",
           px, p.bottom + 18, t.label);
  }
}

void draw_y_axis(std::string& out, const std::vector<Tick>& ticks, const Axis& y, const Rect& p) {
  for (const Tick& t : ticks) {
    const double py = y.map(t.value);
    emit(out,
         "<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{2:.2f}\" y2=\"{1:.2f}\" stroke=\"#e3e3e3\"/>\n",
         p.left, py, p.right);
    emit(out,
         "<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{2:.2f}\" y2=\"{1:.2f}\" stroke=\"#444\"/>\n",
         p.left - 5, py, p.left);
    emit(out, "<text class=\"y-tick\" x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"end\">{}</text>\n",
         p.left - 8, py + 4, t.label);
  }
}

void draw_labels(std::string& out, const ChartSpec& spec, const Layout& l) {
  const Rect& p = l.plot;
  emit(out,
       "<rect class=\"plot-area\" x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" "
       "fill=\"none\" stroke=\"#444\"/>\n",
       p.left, p.top, p.width(), p.height());
  if (!spec.title.empty())
    emit(out,
         "<text class=\"title\" x=\"{:.2f}\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" "
         "font-weight=\"bold\">{}</text>\n",
         l.width / 2.0, escape_xml(spec.title));
  emit(out, "<text class=\"x-label\" x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"middle\">{}</text>\n",
       (p.left + p.right) / 2, p.bottom + 40, escape_xml(spec.x_label));
  const double cy = (p.top + p.bottom) / 2;
  emit(out,
       "<text class=\"y-label\" x=\"21\" y=\"{0:.2f}\" text-anchor=\"middle\" "
       "transform=\"rotate(-90 21 {0:.2f})\">{1}</text>\n",
       cy, escape_xml(spec.y_label));
}

std::string_view colour_of(std::size_t series_index) {
  return kPalette[series_index % kPalette.size()];
}

// Round caps make the duplicated point of a one-point series show as a dot.
void draw_line(std::string& out, const std::vector<ChartPoint>& pts, const ChartSeries& s,
               std::string_view colour, const Axis& x, const Axis& y) {
  std::string coords;
  for (const ChartPoint& p : pts) emit(coords, "{:.2f},{:.2f} ", x.map(p.x), y.map(p.y));
  if (pts.size() == 1) coords += coords;
  coords.pop_back();
  emit(out,
       "<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" "
       "stroke-linejoin=\"round\" stroke-linecap=\"round\"{} points=\"{}\"/>\n",
       colour, s.dashed ? kDashed : "", coords);
}

void draw_markers(std::string& out, const std::vector<ChartPoint>& pts, const ChartSeries& s,
                  std::string_view colour, const Axis& x, const Axis& y) {
  const std::string name = escape_xml(s.name);
  for (const ChartPoint& p : pts)
    emit(out,
         "<circle class=\"marker\" cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"{}\" fill=\"{}\" "
         "stroke=\"white\"><title>{}: ({:g}, {:g})</title></circle>\n",
         x.map(p.x), y.map(p.y), kMarkerRadius, colour, name, p.x, p.y);
}

void draw_series(std::string& out, const ChartSpec& spec, const Axis& x, const Axis& y) {
  emit(out, "<g clip-path=\"url(#{})\">\n", kClipId);
  for (std::size_t i = 0; i < spec.series.size(); ++i) {
    const ChartSeries& s = spec.series[i];
    std::vector<ChartPoint> pts = s.points;
    std::stable_sort(pts.begin(), pts.end(),
                     [](const ChartPoint& a, const ChartPoint& b) { return a.x < b.x; });
    draw_line(out, pts, s, colour_of(i), x, y);
    if (s.markers) draw_markers(out, pts, s, colour_of(i), x, y);
  }
  out += "</g>\n";
}

void draw_legend(std::string& out, const ChartSpec& spec, const Layout& l) {
  out += "<g class=\"legend\">\n";
  for (std::size_t i = 0; i < spec.series.size(); ++i) {
    const ChartSeries& s = spec.series[i];
    const LegendSlot& at = l.legend[i];
    emit(out,
         "<line x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" y2=\"{:.2f}\" stroke=\"{}\" "
         "stroke-width=\"2\" stroke-linecap=\"round\"{}/>\n",
         at.x, at.y, at.x + kLegendSwatch, at.y, colour_of(i), s.dashed ? kDashed : "");
    if (s.markers)
      emit(out,
           "<circle class=\"legend-marker\" cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"{}\" fill=\"{}\" "
           "stroke=\"white\"/>\n",
           at.x + kLegendSwatch / 2, at.y, kMarkerRadius, colour_of(i));
    emit(out, "<text class=\"legend-label\" x=\"{:.2f}\" y=\"{:.2f}\">{}</text>\n",
         at.x + kLegendSwatch + 6, at.y + 4, escape_xml(s.name));
  }
  out += "</g>\n";
}

}  // namespace

std::string render_svg(const ChartSpec& spec) {
  validate(spec);
  const Range xr = x_range(spec);
  const Range yr = y_range(spec);
  check_span(xr, spec.log_x, "x");
  check_span(yr, false, "y");
  Layout layout = vertical_layout(spec);
  const std::vector<Tick> y_ticks = linear_ticks(yr, tick_target(layout.plot.height(), 50));
  horizontal_layout(layout, spec, y_ticks);
  const Rect& p = layout.plot;
  const Axis x_axis{xr, spec.log_x, p.left, p.right};
  const Axis y_axis{yr, false, p.bottom, p.top};
  std::string out;
  open_document(out, spec, layout);
  draw_x_axis(out, x_ticks(xr, spec.log_x, p.width()), x_axis, p);
  draw_y_axis(out, y_ticks, y_axis, p);
  draw_labels(out, spec, layout);
  draw_series(out, spec, x_axis, y_axis);
  draw_legend(out, spec, layout);
  out += "</svg>\n";
  return out;
}

}  // namespace kvscope::cli
