"""Comparison tables of disentanglement metrics: decoders against a baseline.

Input is the study runner's tidy results DataFrame (one row per run and
metric; see `REQUIRED_COLUMNS`). `comparison_table` summarises every
dataset x model x beta x metric cell per decoder (median, interquartile range,
number of seeds) and compares each decoder with the baseline decoder:
difference of medians with a bootstrap confidence interval, the probability of
superiority and the two-sided Mann-Whitney U test (exact, also with ties), its
p-values Holm-corrected within the study's primary metrics and separately
within the secondary ones. Of these only the bootstrap interval is an
approximation (resampling, and the percentile method's coverage).
`min_exact_p` and `seeds_needed` give the smallest p-value a number of seeds
allows. `write_tables` writes the summary as Markdown (evaluation/markdown.py),
CSV and LaTeX.

Neither jinja2 nor tabulate is installed, so pandas' `to_latex` cannot be
used: the LaTeX table is written by a small function here.
"""
import fractions
import math
import os

import numpy as np
import pandas as pd
from scipy import stats

from evaluation import layout
from evaluation import markdown
from evaluation import study as study_lib
from sbd_plugin import atomic

REQUIRED_COLUMNS = ("dataset", "model", "decoder", "seed", "beta", "metric",
                    "value")
GROUP_COLUMNS = ["dataset", "model", "beta", "metric"]
TABLE_COLUMNS = GROUP_COLUMNS + [
    "decoder", "baseline", "n", "median", "q25", "q75", "diff_median",
    "ci_low", "ci_high", "prob_superiority", "p_value", "family", "p_holm",
    "note"]

# Multiple-testing families: Holm runs within each one separately.
PRIMARY = "primary"
SECONDARY = "secondary"
ALPHA = 0.05  # significance level the seed count is planned for
# Bootstrap of the difference of medians; one fresh generator per cell with
# this seed, so a cell's interval does not depend on the other cells.
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
CONFIDENCE_LEVEL = 0.95
HOLM_COLUMN = "p Holm (within family)"

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


def dataset_rows(path, dataset):
  """The rows of `dataset` in the results table (results.csv) at `path`.

  Raises:
    StudyError: if the file cannot be read, lacks REQUIRED_COLUMNS or has
      no rows of `dataset`.
  """
  try:
    frame = pd.read_csv(path, dtype={"run_id": str, "metric": str},
                        float_precision="round_trip")
  except (OSError, ValueError, pd.errors.ParserError) as e:
    raise study_lib.StudyError("Cannot read %s as a results table: %s" % (
        path, e)) from None
  missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
  if missing:
    raise study_lib.StudyError("%s lacks the columns %s." % (
        path, ", ".join(missing)))
  rows = frame[frame["dataset"] == dataset]
  if not len(rows):
    raise study_lib.StudyError("%s has no rows of dataset %r (it has %s)." % (
        path, dataset, ", ".join(sorted(map(str, frame["dataset"].unique())))))
  return rows


def dataset_rank(dataset_order=None):
  """Sort key of dataset names: those of `dataset_order` first, in its order
  (e.g. the study's), then the others by name.

  Args:
    dataset_order: Sequence of dataset names, or None (all by name).

  Returns:
    Function of a dataset name giving a sortable key.
  """
  rank = {d: i for i, d in enumerate(dataset_order or ())}
  return lambda dataset: (rank.get(dataset, len(rank)), str(dataset))


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
  return exact_mann_whitney_p(values, baseline_values), ""


def _rank_sum_counts(doubled_ranks, size):
  """How many subsets of `size` items have each sum of doubled ranks.

  Counting by dynamic programming visits every one of the C(N, size) splits
  of the pooled values implicitly: item by item, the number of subsets of k
  items with sum s is the number without the item plus the number of subsets
  of k - 1 items with sum s - (its doubled rank).

  Args:
    doubled_ranks: 1-D int array, twice the pooled values' mid-ranks (whole
      numbers even with ties).
    size: Number of items in the first group.

  Returns:
    1-D object array of Python ints (exact for any N): entry s is the number
    of subsets of `size` items whose doubled ranks sum to s.
  """
  total = int(doubled_ranks.sum())
  counts = np.zeros((size + 1, total + 1), dtype=object)
  counts[0, 0] = 1
  for rank in doubled_ranks.tolist():
    # Larger subsets first, so each item is used at most once.
    for k in range(size, 0, -1):
      counts[k, rank:] = counts[k, rank:] + counts[k - 1, :total + 1 - rank]
  return counts[size]


def exact_mann_whitney_p(values, baseline_values):
  """Exact two-sided Mann-Whitney U p-value, also when values tie.

  The permutation (conditional) test: under the null hypothesis every split
  of the pooled values into groups of n1 and n2 is equally likely, ties
  keeping their mid-ranks, so the p-value is the share of the C(n1 + n2, n1)
  splits whose U is at least as extreme. Two-sided as scipy's
  `permutation_test`: twice the smaller one-sided p-value, at most 1. Without
  ties this equals scipy's `mannwhitneyu(..., method="exact")`; with ties
  scipy's default falls back to the normal approximation, which this does
  not. Exact for every group size (the splits are counted, not sampled).

  Args:
    values: 1-D array of one group's values (no NaNs, >= 1 value).
    baseline_values: 1-D array of the other group's values (>= 1 value).

  Returns:
    Float in (0, 1].
  """
  # One stratum: the stratified test's null distribution is this one's.
  return stratified_exact_p([(values, baseline_values)])[2]


def _convolve_counts(a, b):
  """Counts of the sum of two independent statistics, from their counts."""
  out = np.zeros(len(a) + len(b) - 1, dtype=object)
  for i in np.flatnonzero(a):
    out[i:i + len(b)] = out[i:i + len(b)] + a[i] * b
  return out


def stratified_exact_p(strata):
  """Exact two-sided p of a Mann-Whitney test stratified by, e.g., beta.

  The statistic is the unweighted sum over strata of each stratum's
  Mann-Whitney U of one group against the other. Under the null hypothesis
  the values are exchangeable within each stratum only, so every split
  within every stratum is equally likely (the product of the strata's
  C(n1 + n2, n1)); the distribution of the sum is the
  convolution of the strata's exact distributions (`_rank_sum_counts`, ties
  keeping their mid-ranks). Two-sided as `exact_mann_whitney_p`: twice the
  smaller one-sided p, at most 1; with one stratum it is that p.

  Args:
    strata: Sequence of (values, baseline_values) pairs of 1-D arrays (no
      NaNs); a pair with an empty group tests nothing and is left out.

  Returns:
    Tuple (u_sum, u_max, p): the observed sum of U (pairs with the first
    group above, ties one half), its largest possible value (the sum of
    n1 n2) and the p-value; (NaN, NaN, NaN) when no stratum has both groups.

  Raises:
    ValueError: if a value is NaN (a rank of NaN is meaningless).
  """
  counts = np.array([1], dtype=object)
  observed, u_sum, u_max = 0, 0.0, 0
  for values, baseline_values in strata:
    values = np.asarray(values, dtype=float)
    baseline_values = np.asarray(baseline_values, dtype=float)
    if not values.size or not baseline_values.size:
      continue
    pooled = np.concatenate([values, baseline_values])
    if np.isnan(pooled).any():
      raise ValueError("stratified_exact_p: NaN among the values; leave "
                       "runs without a value out first.")
    doubled = np.rint(2 * stats.rankdata(pooled)).astype(np.int64)
    observed += int(doubled[:values.size].sum())
    counts = _convolve_counts(counts, _rank_sum_counts(doubled, values.size))
    # U = rank sum - n1 (n1 + 1) / 2.
    u_sum += (doubled[:values.size].sum() / 2 -
              values.size * (values.size + 1) / 2)
    u_max += values.size * baseline_values.size
  if not u_max:
    return float("nan"), float("nan"), float("nan")
  splits = sum(counts)
  upper = sum(counts[observed:])  # splits with U >= the observed U
  lower = sum(counts[:observed + 1])  # splits with U <= the observed U
  p = float(min(1, fractions.Fraction(2 * min(upper, lower), splits)))
  return float(u_sum), float(u_max), p


def prob_superiority(values, baseline_values):
  """Probability of superiority: Mann-Whitney U / (n1 * n2).

  U counts the (decoder, baseline) pairs in which the decoder's value is
  larger, ties counting one half; it equals scipy's `mannwhitneyu(values,
  baseline_values).statistic`.

  Args:
    values: 1-D array of one decoder's values (non-empty, no NaNs).
    baseline_values: 1-D array of the baseline decoder's values (non-empty).

  Returns:
    Float in [0, 1]: 0.5 is no effect, 1 means every decoder value is above
    every baseline value.
  """
  a = np.asarray(values, dtype=float)[:, None]
  b = np.asarray(baseline_values, dtype=float)[None, :]
  u = np.sum(a > b) + 0.5 * np.sum(a == b)
  return float(u / (a.size * b.size))


def _median_difference(a, b, axis=-1):
  return np.median(a, axis=axis) - np.median(b, axis=axis)


def median_difference_ci(values, baseline_values, n_resamples=N_RESAMPLES,
                         seed=BOOTSTRAP_SEED,
                         confidence_level=CONFIDENCE_LEVEL):
  """Bootstrap confidence interval of median(values) - median(baseline).

  The two groups are resampled independently. The percentile method is used
  because BCa's acceleration comes from jackknife medians, which are all equal
  whenever seeds tie (common with 2-5 seeds): scipy then returns NaN. With so
  few seeds the interval is coarse (few distinct resamples) and tends to be too
  narrow; read it as a description of the spread, not as a test.

  Args:
    values: 1-D array of one decoder's values (no NaNs).
    baseline_values: 1-D array of the baseline decoder's values.
    n_resamples: Number of bootstrap resamples.
    seed: Seed of the resampling generator (same inputs, same interval).
    confidence_level: Coverage of the interval.

  Returns:
    Tuple (low, high); (NaN, NaN) when a group has fewer than 2 values.
  """
  values = np.asarray(values, dtype=float)
  baseline_values = np.asarray(baseline_values, dtype=float)
  if values.size < 2 or baseline_values.size < 2:
    return float("nan"), float("nan")
  result = stats.bootstrap(
      (values, baseline_values), _median_difference, vectorized=True,
      paired=False, n_resamples=n_resamples, method="percentile",
      confidence_level=confidence_level,
      random_state=np.random.default_rng(seed))
  interval = result.confidence_interval
  return float(interval.low), float(interval.high)


def holm(p_values):
  """Holm's step-down adjustment of p-values for multiple testing.

  With the m finite p-values sorted ascending, p_(1) <= ... <= p_(m), the
  adjusted value of p_(i) is max over j <= i of min(1, (m - j + 1) p_(j)); it
  controls the family-wise error rate under any dependence. scipy 1.13 has
  only Benjamini-Hochberg (`false_discovery_control`), hence this function.

  Args:
    p_values: 1-D array-like of p-values; NaN entries are not tests: they are
      not counted in m and stay NaN.

  Returns:
    Float array of adjusted p-values, in the input's order.
  """
  p = np.asarray(p_values, dtype=float)
  adjusted = np.full(p.shape, np.nan)
  tested = np.flatnonzero(~np.isnan(p))
  order = tested[np.argsort(p[tested], kind="stable")]
  m = order.size
  scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
  adjusted[order] = np.maximum.accumulate(scaled)
  return adjusted


def min_exact_p(n1, n2):
  """Smallest two-sided p-value of the exact Mann-Whitney U test.

  Reached when the groups do not overlap and no values tie: 2 of the
  C(n1 + n2, n1) equally likely splits are that extreme
  (`exact_mann_whitney_p`); ties can only make the smallest p larger.

  Args:
    n1: Number of values in the first group (>= 1).
    n2: Number of values in the second group (>= 1).

  Returns:
    Float, e.g. 2 / 252 = 0.0079 for 5 against 5.
  """
  return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def seeds_needed(num_tests, alpha=ALPHA):
  """Seeds per decoder needed before Holm can find any difference at all.

  Holm multiplies the smallest of `num_tests` p-values by `num_tests`, and no
  p-value is below `min_exact_p(n, n)`, so no test can be significant while
  num_tests * min_exact_p(n, n) >= alpha, however large the true effect.

  Args:
    num_tests: Number of tests in the Holm family (>= 1).
    alpha: Family-wise significance level, in (0, 1].

  Returns:
    Smallest n (equal groups) with num_tests * min_exact_p(n, n) < alpha.
  """
  if num_tests < 1 or not 0 < alpha <= 1:
    raise ValueError("seeds_needed needs num_tests >= 1 and 0 < alpha <= 1, "
                     "got %r and %r." % (num_tests, alpha))
  n = 1
  while num_tests * min_exact_p(n, n) >= alpha:
    n += 1
  return n


def metric_family(metric, primary_metrics=study_lib.PRIMARY_METRICS):
  """Returns PRIMARY for the study's primary metrics, else SECONDARY."""
  return PRIMARY if metric in primary_metrics else SECONDARY


def comparison_table(df, baseline=study_lib.BASELINE,
                     primary_metrics=study_lib.PRIMARY_METRICS,
                     n_resamples=N_RESAMPLES, seed=BOOTSTRAP_SEED,
                     dataset_order=None):
  """Summarises each decoder per dataset, model, beta and metric.

  Args:
    df: Tidy results DataFrame with at least the columns in REQUIRED_COLUMNS,
      one row per (run, metric). Rows with a NaN value (failed metric) are
      ignored; `n` counts the seeds left.
    baseline: Decoder label every other decoder is compared against.
    primary_metrics: Metric names of the study's main claim; every other
      metric is secondary. Holm corrects each family separately.
    n_resamples: Bootstrap resamples of the confidence interval.
    seed: Seed of every cell's bootstrap (the table is reproducible).
    dataset_order: Optional sequence of dataset names, e.g. the study's
      order; datasets it does not list follow, by name. Default: by name.

  Returns:
    Tidy DataFrame with columns TABLE_COLUMNS, one row per dataset x model x
    beta x metric x decoder, sorted by dataset (`dataset_order`), model,
    beta and metric, the baseline first in each cell. `diff_median` is the
    decoder's median minus the baseline's median, [`ci_low`, `ci_high`] its
    percentile bootstrap CONFIDENCE_LEVEL interval (`median_difference_ci`);
    `prob_superiority` is U / (n1 n2); `p_value` is the two-sided
    Mann-Whitney U p-value of the decoder's values against the baseline's
    and `p_holm` its Holm adjustment over all cells of the metric's `family`
    (PRIMARY or SECONDARY) that have a p-value. The test's columns and the
    interval are NaN on the baseline row (`diff_median` too), when the
    baseline has no values and when a group has fewer than 2 values; `note`
    says why a p-value is missing or was set (see `mann_whitney`).
  """
  _check_columns(df, REQUIRED_COLUMNS)
  data = df[df["value"].notna()]
  nan = float("nan")
  rows = []
  for key, group in data.groupby(GROUP_COLUMNS, sort=True, dropna=False):
    by_decoder = {d: g["value"].to_numpy(dtype=float)
                  for d, g in group.groupby("decoder")}
    base_values = by_decoder.get(baseline, np.array([]))
    base_median = (float(np.median(base_values)) if base_values.size
                   else nan)
    for decoder in decoder_order(by_decoder, baseline):
      values = by_decoder[decoder]
      median = float(np.median(values))
      diff, ci, superiority = nan, (nan, nan), nan
      if decoder == baseline:
        p_value, note = nan, NOTE_BASELINE
      else:
        diff = median - base_median
        p_value, note = mann_whitney(values, base_values)
        ci = median_difference_ci(values, base_values, n_resamples, seed)
        if values.size >= 2 and base_values.size >= 2:
          superiority = prob_superiority(values, base_values)
      metric = key[GROUP_COLUMNS.index("metric")]
      rows.append(dict(zip(GROUP_COLUMNS, key), decoder=decoder,
                       baseline=baseline, n=int(values.size), median=median,
                       q25=float(np.percentile(values, 25)),
                       q75=float(np.percentile(values, 75)),
                       diff_median=diff, ci_low=ci[0], ci_high=ci[1],
                       prob_superiority=superiority, p_value=p_value,
                       family=metric_family(metric, primary_metrics),
                       p_holm=nan, note=note))
  table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
  if dataset_order is not None:
    # Stable: within a dataset, and among the unlisted ones, as grouped.
    key = dataset_rank(dataset_order)
    datasets = table["dataset"].tolist()
    position = sorted(range(len(table)), key=lambda i: key(datasets[i]))
    table = table.iloc[position].reset_index(drop=True)
  for family in (PRIMARY, SECONDARY):
    members = table["family"] == family
    table.loc[members, "p_holm"] = holm(table.loc[members, "p_value"])
  return table


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


def format_strength(model, beta, missing="-"):
  """A run's regularisation named as its model names it, e.g. "γ=30".

  Args:
    model: The study's model name (FactorVAE's value is its gamma).
    beta: Float, NaN when the run's value is unknown.
    missing: Text for an unknown value.

  Returns:
    String, e.g. "β=4" or "γ=30".
  """
  return "%s=%s" % (layout.REGULARISATION_SYMBOLS.get(model, "β"),
                    format_beta(beta, missing))


def _fmt_diff(diff, low, high, digits):
  text = _fmt(diff, digits, sign=True)
  if math.isnan(low):
    return text
  return "%s [%s, %s]" % (text, _fmt(low, digits, sign=True),
                          _fmt(high, digits, sign=True))


def format_table(table, digits=3):
  """Returns a string-valued copy of `table` for reading (Markdown, LaTeX).

  Args:
    table: Output of `comparison_table`.
    digits: Decimals shown for values and differences.

  Returns:
    DataFrame of strings with columns dataset, model, beta, metric, decoder,
    n, "median [q25, q75]", "diff vs <baseline> [95% CI]", P(sup), p,
    HOLM_COLUMN (the adjusted p and its family, e.g. "0.024 (primary)"), note.
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
      "diff vs %s [%d%% CI]" % (baseline, round(100 * CONFIDENCE_LEVEL)): [
          _fmt_diff(d, a, b, digits) for d, a, b in zip(
              table["diff_median"], table["ci_low"], table["ci_high"])],
      "P(sup)": [_fmt(x, 2) for x in table["prob_superiority"]],
      "p": table["p_value"].map(_fmt_p),
      HOLM_COLUMN: [("-" if math.isnan(p) else "%s (%s)" % (_fmt_p(p), f))
                    for p, f in zip(table["p_holm"], table["family"])],
      # The baseline row's note only repeats the decoder column.
      "note": [("" if n == NOTE_BASELINE else n) for n in table["note"]],
  })
  return out


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%",
                  "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  # In LaTeX's default OT1 font encoding "<" prints as "¡".
                  "<": r"\textless{}", ">": r"\textgreater{}"}


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
  numeric = {"n", "P(sup)", "p", HOLM_COLUMN}
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
  atomic.write_text(paths[0], markdown.frame_to_markdown(strings))
  # The CSV keeps full precision for later analysis.
  atomic.write_text(paths[1], table.to_csv(index=False))
  atomic.write_text(paths[2], to_latex(strings))
  return paths
