"""Ratios of rates, their printed forms, and the report the benchmarks print."""
from evaluation.markdown import markdown_table


def ratio(numerator, denominator):
  """Returns numerator / denominator, or nan if either is missing or <= 0."""
  if not numerator or not denominator or denominator <= 0:
    return float("nan")
  return float(numerator) / float(denominator)


def input_overhead(real_rate, constant_rate):
  """Share of the step time spent waiting for input.

  Args:
    real_rate: Steps/s with the real input pipeline.
    constant_rate: Steps/s with a constant in-memory batch.

  Returns:
    1 - real_rate / constant_rate (may be slightly negative from noise), or
    nan if a rate is missing.
  """
  return 1.0 - ratio(real_rate, constant_rate)


def format_ratio(value):
  """Formats a speed-up, e.g. 12.3456 -> '12.3x'."""
  return "n/a" if value != value else "%.1fx" % value


def format_percent(value):
  """Formats a fraction as a percentage, e.g. 0.0123 -> '1.2%'."""
  if value != value:
    return "n/a"
  # Tiny shares (input busy time of a slow step) keep two significant digits.
  if 0 < abs(value) < 0.001:
    return "%.2f%%" % (100.0 * value)
  return "%.1f%%" % (100.0 * value)


def format_rate(value):
  """Formats a rate with a precision that suits its size."""
  if value is None or value != value:
    return "n/a"
  if value >= 100:
    return "%d" % round(value)
  if value >= 10:
    return "%.1f" % value
  return "%.2f" % value


class Report(object):
  """Prints sections and tables, and keeps them for the Markdown file."""

  def __init__(self):
    self.lines = []

  def section(self, title):
    print("\n== %s ==" % title, flush=True)
    self.lines += ["", "### " + title, ""]

  def table(self, header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in [header] + list(rows):
      print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    self.lines += markdown_table(header, rows) + [""]

  def note(self, text):
    print(text, flush=True)
    # Two trailing spaces: a Markdown line break, one note per line.
    self.lines.append(text + "  ")
