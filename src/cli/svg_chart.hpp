// A line chart as a self-contained SVG 1.1 document. `kvscope replay --svg`
// draws token hit ratio against cache capacity with it: one series per
// eviction policy (measured points, markers and a line) and the miss-ratio
// curve the analytics predict (a dashed line, no markers). The caller writes
// the file.
//
// Pure function of its input, no shared state: any thread may call it.
// Cost: O(P log P) time for P points, output O(P + series + ticks) bytes.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace kvscope::cli {

/// One point in data units.
struct ChartPoint {
  double x = 0;
  double y = 0;
};

/// One line of the chart. Its colour is taken by position in
/// ChartSpec::series from a fixed colour-blind-safe palette (Okabe-Ito),
/// cycling after eight series.
struct ChartSeries {
  std::string name;                ///< legend label (XML-escaped on output)
  std::vector<ChartPoint> points;  ///< any order; drawn sorted by x
  bool markers = true;             ///< a small circle per point (measured values)
  bool dashed = false;             ///< a dashed line (predictions)
};

struct ChartSpec {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_x = false;  ///< log10 x axis (capacities span decades); needs every x > 0
  /// The y range. A bound left unset comes from the data, padded by 5% of
  /// its span; points outside an explicit bound are clipped at the plot edge.
  /// The x range always comes from the data, padded the same way.
  std::optional<double> y_min;
  std::optional<double> y_max;
  int width = 800;   ///< pixels, >= 200
  int height = 500;  ///< pixels, >= 200; the document grows taller only if the legend
                     ///< would leave the plot under 80 pixels high
  std::vector<ChartSeries> series;
};

/// Renders `spec` as an SVG 1.1 document: title, axes with 1/2/5 x 10^k
/// ticks (decades on a log axis, with 2 and 5 labelled when the range spans
/// few decades), compact tick labels (0.25, 500, 1.5k, 10k, 1M), axis labels,
/// one polyline per series in the order given, a legend below the plot.
/// Every text is XML-escaped; control characters XML 1.0 forbids are dropped.
/// A single point still gets an axis of non-zero span (a decade around it on
/// a log axis, +-10% of it, or +-1 at zero, on a linear one).
/// The result starts with "<svg" and ends with "</svg>\n". Marker circles carry
/// class="marker", series lines class="series", the plot frame class="plot-area".
/// Throws std::invalid_argument with a message when the spec cannot be drawn:
/// no series, a series with no points, a non-finite coordinate or y bound,
/// x <= 0 on a log axis, width or height < 200, y_min >= y_max, or a data
/// range too wide for a double.
std::string render_svg(const ChartSpec& spec);

}  // namespace kvscope::cli
