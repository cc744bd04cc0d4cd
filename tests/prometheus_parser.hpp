// A small, strict parser of Prometheus text exposition format 0.0.4, for
// tests: it reads back what kvscope exports and checks the rules a scraper
// relies on. Throws std::runtime_error naming the line on any violation.
#pragma once

#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kvscope::testing_util {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0.0;
};

struct PromFamily {
  std::string name;
  std::string help;
  std::string type;
  std::vector<PromSample> samples;
};

class PromParser {
 public:
  static std::vector<PromFamily> parse(std::string_view text) {
    PromParser p;
    std::size_t line_no = 0;
    while (!text.empty()) {
      const std::size_t end = text.find('\n');
      if (end == std::string_view::npos) p.fail(line_no + 1, "the text must end with a newline");
      p.line(++line_no, text.substr(0, end));
      text.remove_prefix(end + 1);
    }
    for (const PromFamily& f : p.families_) p.check_family(f);
    return p.families_;
  }

  static const PromFamily& find(const std::vector<PromFamily>& families, std::string_view name) {
    for (const PromFamily& f : families) {
      if (f.name == name) return f;
    }
    throw std::runtime_error("no family " + std::string(name));
  }

  /// The value of the one sample of `name` carrying all of `labels`.
  static double value(const std::vector<PromFamily>& families, std::string_view family,
                      std::string_view name, const std::map<std::string, std::string>& labels) {
    const PromSample* found = nullptr;
    for (const PromSample& s : find(families, family).samples) {
      if (s.name != name) continue;
      bool all = true;
      for (const auto& [k, v] : labels) {
        const auto it = s.labels.find(k);
        all = all && it != s.labels.end() && it->second == v;
      }
      if (!all) continue;
      if (found != nullptr) throw std::runtime_error("two samples match " + std::string(name));
      found = &s;
    }
    if (found == nullptr) throw std::runtime_error("no sample " + std::string(name));
    return found->value;
  }

 private:
  [[noreturn]] void fail(std::size_t line_no, const std::string& what) const {
    throw std::runtime_error("line " + std::to_string(line_no) + ": " + what);
  }

  static bool name_char(char c, bool first) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    return alpha || (!first && c >= '0' && c <= '9');
  }

  std::string read_name(std::size_t line_no, std::string_view& rest) const {
    std::size_t n = 0;
    while (n < rest.size() && name_char(rest[n], n == 0)) ++n;
    if (n == 0) fail(line_no, "expected a name");
    std::string name(rest.substr(0, n));
    rest.remove_prefix(n);
    return name;
  }

  void line(std::size_t line_no, std::string_view text) {
    if (text.starts_with("# HELP ") || text.starts_with("# TYPE ")) return meta(line_no, text);
    if (text.starts_with("#") || text.empty()) return;
    sample(line_no, text);
  }

  void meta(std::size_t line_no, std::string_view text) {
    const bool help = text.starts_with("# HELP ");
    text.remove_prefix(7);
    const std::string name = read_name(line_no, text);
    if (text.empty() || text[0] != ' ') fail(line_no, "expected a space after the name");
    text.remove_prefix(1);
    if (families_.empty() || families_.back().name != name) {
      for (const PromFamily& f : families_) {
        if (f.name == name) fail(line_no, "family " + name + " appears twice");
      }
      families_.push_back(PromFamily{name, "", "", {}});
    }
    PromFamily& f = families_.back();
    if (!f.samples.empty()) fail(line_no, "HELP/TYPE after samples of " + name);
    if (help) {
      f.help = std::string(text);
    } else {
      if (text != "counter" && text != "gauge" && text != "histogram" && text != "summary" &&
          text != "untyped") {
        fail(line_no, "unknown type " + std::string(text));
      }
      f.type = std::string(text);
    }
  }

  void sample(std::size_t line_no, std::string_view text) {
    PromSample s;
    s.name = read_name(line_no, text);
    if (families_.empty()) fail(line_no, "sample before any HELP/TYPE");
    PromFamily& f = families_.back();
    if (f.help.empty() || f.type.empty()) fail(line_no, "family without HELP and TYPE");
    const bool own = s.name == f.name || (f.type == "histogram" && (s.name == f.name + "_bucket" ||
                                                                    s.name == f.name + "_sum" ||
                                                                    s.name == f.name + "_count"));
    if (!own) fail(line_no, "sample " + s.name + " outside its family (now " + f.name + ")");
    if (!text.empty() && text[0] == '{') labels(line_no, text, s);
    if (text.empty() || text[0] != ' ') fail(line_no, "expected a space before the value");
    text.remove_prefix(1);
    const std::string value(text);
    if (value == "+Inf") {
      s.value = INFINITY;
    } else if (value == "-Inf") {
      s.value = -INFINITY;
    } else if (value == "NaN") {
      s.value = NAN;
    } else {
      std::size_t used = 0;
      try {
        s.value = std::stod(value, &used);
      } catch (const std::exception&) {
        fail(line_no, "bad value " + value);
      }
      if (used != value.size()) fail(line_no, "bad value " + value);
    }
    f.samples.push_back(std::move(s));
  }

  void labels(std::size_t line_no, std::string_view& text, PromSample& s) {
    text.remove_prefix(1);
    while (true) {
      const std::string key = read_name(line_no, text);
      if (!text.starts_with("=\"")) fail(line_no, "expected =\" after label " + key);
      text.remove_prefix(2);
      std::string value;
      while (true) {
        if (text.empty()) fail(line_no, "unterminated label value");
        const char c = text[0];
        text.remove_prefix(1);
        if (c == '"') break;
        if (c != '\\') {
          value += c;
          continue;
        }
        if (text.empty()) fail(line_no, "dangling escape");
        const char e = text[0];
        text.remove_prefix(1);
        if (e == 'n') {
          value += '\n';
        } else if (e == '\\' || e == '"') {
          value += e;
        } else {
          fail(line_no, "bad escape");
        }
      }
      if (!s.labels.emplace(key, value).second) fail(line_no, "label " + key + " twice");
      if (text.starts_with(",")) {
        text.remove_prefix(1);
        continue;
      }
      if (text.starts_with("}")) {
        text.remove_prefix(1);
        return;
      }
      fail(line_no, "expected , or } in labels");
    }
  }

  // Per-family rules: counters end in _total and are >= 0; histogram series
  // have cumulative buckets ending at le="+Inf" == _count.
  void check_family(const PromFamily& f) const {
    if (f.type == "counter") {
      if (!f.name.ends_with("_total")) fail(0, "counter " + f.name + " must end in _total");
      for (const PromSample& s : f.samples) {
        if (!(s.value >= 0)) fail(0, "counter " + f.name + " is negative");
      }
    }
    if (f.type != "histogram") return;
    std::map<std::map<std::string, std::string>, std::vector<const PromSample*>> series;
    for (const PromSample& s : f.samples) {
      auto key = s.labels;
      key.erase("le");
      series[key].push_back(&s);
    }
    for (const auto& [key, samples] : series) {
      double last = 0, le_last = -INFINITY, inf = -1, count = -2;
      for (const PromSample* s : samples) {
        if (s->name == f.name + "_bucket") {
          const auto le = s->labels.find("le");
          if (le == s->labels.end()) fail(0, f.name + " bucket without le");
          const double bound = le->second == "+Inf" ? INFINITY : std::stod(le->second);
          if (bound <= le_last) fail(0, f.name + " buckets out of order");
          if (s->value < last) fail(0, f.name + " buckets not cumulative");
          le_last = bound;
          last = s->value;
          if (std::isinf(bound)) inf = s->value;
        } else if (s->name == f.name + "_count") {
          count = s->value;
        }
      }
      if (inf != count) fail(0, f.name + ": le=\"+Inf\" bucket differs from _count");
    }
  }

  std::vector<PromFamily> families_;
};

}  // namespace kvscope::testing_util
