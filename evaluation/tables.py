"""Comparison tables of disentanglement metrics: decoders against a baseline.

Input is the study runner's tidy results DataFrame (one row per run and
metric; see `REQUIRED_COLUMNS`). `comparison_table` summarises every
dataset x model x beta x metric cell per decoder (median, interquartile range,
number of seeds) and compares each decoder with the baseline decoder
(difference of medians, two-sided Mann-Whitney U test). `write_tables` writes
the summary as Markdown (evaluation/markdown.py), CSV and LaTeX.

Neither jinja2 nor tabulate is installed, so pandas' `to_latex` cannot be
used: the LaTeX table is written by a small function here.
"""
import math
import os

import numpy as np
import pandas as pd
from scipy import stats

from evaluation import markdown
from evaluation import study as study_lib

REQUIRED_COLUMNS = ("dataset", "model", "decoder", "seed", "beta", "metric",
                    "value")
GROUP_COLUMNS = ["dataset", "model", "beta", "metric"]
TABLE_COLUMNS = GROUP_COLUMNS + [
    "decoder", "baseline", "n", "median", "q25", "q75", "diff_median",
    "p_value", "note"]

# Reasons written to the `note` column when no p-value can be computed.
NOTE_BASELINE = "baseline"
NOTE_NO_BASELINE = "no baseline values"
NOTE_SMALL_N = "n < 2 in a group: test not computed"
NOTE_ALL_EQUAL = "all values equal: p set to 1"


def _check_columns(df, columns):
  missing = [c for c in columns if c not in df.columns]
  if missing:
    raise ValueError("Results DataFrame lacks columns %s (has %s)."
                     % (missing, list(df.columns)))


def decoder_order(decoders, baseline=study_lib.BASELINE):
  """Returns the decoders sorted with the baseline first (stable layout).

  Args:
    decoders: Iterable of decoder labels (duplicates allowed).
    baseline: Label listed first when present.

  Returns:
    List of unique labels.
  """
  unique = sorted(set(decoders))
  if baseline in unique:
    unique.remove(baseline)
    unique.insert(0, baseline)
  return unique


def mann_whitney(values, baseline_values):
  """Two-sided Mann-Whitney U test with the degenerate cases made explicit.

  scipy would return a p-value even for one value per group, where no outcome
  can reach significance; such cells get NaN and a note instead so that a
  reader does not mistake them for evidence.

  Args:
    values: 1-D array of one decoder's values (NaNs already removed).
    baseline_values: 1-D array of the baseline decoder's values.

  Returns:
    Tuple (p_value, note): note is "" when the test ran normally.
  """
  values = np.asarray(values, dtype=float)
  baseline_values = np.asarray(baseline_values, dtype=float)
  if baseline_values.size == 0:
    return float("nan"), NOTE_NO_BASELINE
  if values.size < 2 or baseline_values.size < 2:
    return float("nan"), NOTE_SMALL_N
  pooled = np.concatenate([values, baseline_values])
  if np.all(pooled == pooled[0]):
    # No ranking information at all: the samples are indistinguishable.
    return 1.0, NOTE_ALL_EQUAL
  result = stats.mannwhitneyu(values, baseline_values, alternative="two-sided")
  return float(result.pvalue), ""


def comparison_table(df, baseline=study_lib.BASELINE):
  """Summarises each decoder per dataset, model, beta and metric.

  Args:
    df: Tidy results DataFrame with at least the columns in REQUIRED_COLUMNS,
      one row per (run, metric). Rows with a NaN value (failed metric) are
      ignored; `n` counts the seeds left.
    baseline: Decoder label every other decoder is compared against.

  Returns:
    Tidy DataFrame with columns TABLE_COLUMNS, one row per dataset x model x
    beta x metric x decoder. `diff_median` is the decoder's median minus the
    baseline's median; `p_value` is the two-sided Mann-Whitney U p-value of
    the decoder's values against the baseline's. Both are NaN on the baseline
    row itself and when the baseline has no values; `note` says why a p-value
    is missing or was set (see `mann_whitney`).
  """
  _check_columns(df, REQUIRED_COLUMNS)
  data = df[df["value"].notna()]
  rows = []
  for key, group in data.groupby(GROUP_COLUMNS, sort=True, dropna=False):
    by_decoder = {d: g["value"].to_numpy(dtype=float)
                  for d, g in group.groupby("decoder")}
    base_values = by_decoder.get(baseline, np.array([]))
    base_median = (float(np.median(base_values)) if base_values.size
                   else float("nan"))
    for decoder in decoder_order(by_decoder, baseline):
      values = by_decoder[decoder]
      median = float(np.median(values))
      if decoder == baseline:
        diff, p_value, note = float("nan"), float("nan"), NOTE_BASELINE
      else:
        diff = median - base_median
        p_value, note = mann_whitney(values, base_values)
      rows.append(dict(zip(GROUP_COLUMNS, key), decoder=decoder,
                       baseline=baseline, n=int(values.size), median=median,
                       q25=float(np.percentile(values, 25)),
                       q75=float(np.percentile(values, 75)),
                       diff_median=diff, p_value=p_value, note=note))
  return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _fmt(x, digits=3, sign=False):
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "-"
  return ("%+.*f" if sign else "%.*f") % (digits, x)


def _fmt_p(p):
  if p is None or math.isnan(p):
    return "-"
  if p < 1e-4:
    return "<1e-4"
  return "%.2g" % p


def format_beta(beta, missing="-"):
  """Formats a run's beta (or gamma) for tables and figure labels.

  Args:
    beta: Float, NaN when the run's value is unknown.
    missing: Text for an unknown beta (tables "-", figures "unknown").

  Returns:
    String, e.g. "4" or "0.5".
  """
  return missing if pd.isna(beta) else "%g" % beta


def format_table(table, digits=3):
  """Returns a string-valued copy of `table` for reading (Markdown, LaTeX).

  Args:
    table: Output of `comparison_table`.
    digits: Decimals shown for values and differences.

  Returns:
    DataFrame of strings with columns dataset, model, beta, metric, decoder,
    n, "median [q25, q75]", "diff vs <baseline>", p, note.
  """
  baseline = table["baseline"].iloc[0] if len(table) else "baseline"
  out = pd.DataFrame({
      "dataset": table["dataset"].astype(str),
      "model": table["model"].astype(str),
      "beta": table["beta"].map(format_beta),
      "metric": table["metric"].astype(str),
      "decoder": table["decoder"].astype(str),
      "n": table["n"].astype(int).astype(str),
      "median [q25, q75]": [
          "%s [%s, %s]" % (_fmt(m, digits), _fmt(a, digits), _fmt(b, digits))
          for m, a, b in zip(table["median"], table["q25"], table["q75"])],
      "diff vs %s" % baseline: [_fmt(d, digits, sign=True)
                                for d in table["diff_median"]],
      "p": table["p_value"].map(_fmt_p),
      # The baseline row's note only repeats the decoder column.
      "note": [("" if n == NOTE_BASELINE else n) for n in table["note"]],
  })
  return out


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%",
                  "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text):
  """Escapes LaTeX's special characters in plain text."""
  return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def to_latex(strings):
  """Renders a DataFrame of strings as a booktabs LaTeX tabular.

  Args:
    strings: DataFrame of strings (see `format_table`).

  Returns:
    String with a complete tabular environment (needs \\usepackage{booktabs}).
  """
  numeric = {"n", "p"}
  align = "".join("r" if c in numeric or c.startswith(("median", "diff"))
                  else "l" for c in strings.columns)
  lines = [r"\begin{tabular}{%s}" % align, r"\toprule",
           " & ".join(latex_escape(c) for c in strings.columns) + r" \\",
           r"\midrule"]
  previous = None
  for row in strings.itertuples(index=False):
    group = tuple(row[:4])  # dataset, model, beta, metric
    if previous is not None and group != previous:
      lines.append(r"\addlinespace")
    previous = group
    lines.append(" & ".join(latex_escape(c) for c in row) + r" \\")
  lines += [r"\bottomrule", r"\end{tabular}"]
  return "\n".join(lines) + "\n"


def write_tables(table, out_prefix):
  """Writes the comparison table as Markdown, CSV and LaTeX.

  Args:
    table: Output of `comparison_table`.
    out_prefix: Path without extension; its directory is created if needed.

  Returns:
    List of the written paths: [<prefix>.md, <prefix>.csv, <prefix>.tex].
  """
  directory = os.path.dirname(out_prefix)
  if directory:
    os.makedirs(directory, exist_ok=True)
  strings = format_table(table)
  paths = [out_prefix + ".md", out_prefix + ".csv", out_prefix + ".tex"]
  with open(paths[0], "w") as f:
    f.write(markdown.frame_to_markdown(strings))
  # The CSV keeps full precision for later analysis.
  table.to_csv(paths[1], index=False)
  with open(paths[2], "w") as f:
    f.write(to_latex(strings))
  return paths
