"""The endpoints of the paper's claims (c), (d) and (e), from a study's numbers.

Pure functions of tidy DataFrames (pandas, numpy, scipy; no TensorFlow). They
use evaluation/tables.py's tests and intervals, so every number follows the
comparison tables' conventions: the exact two-sided Mann-Whitney p
(`tables.mann_whitney`), Holm's adjustment, percentile bootstrap intervals
with `tables.N_RESAMPLES` resamples from a fresh generator seeded
`tables.BOOTSTRAP_SEED` per row.

- (c) rate-distortion across beta: `run_table` (one row per run),
  `beta_summary` (mean and sample sd per beta, what the rate-distortion
  figure draws) and `rate_distortion_table` (per beta, each decoder's NLL, KL
  and MIG; the NLL difference against the baseline at matched beta, its p,
  Holm over the betas) and `pooled_beta_table` (MIG against the baseline
  across every beta at once, stratified by beta).
- (d) held-out region: `heldout_gaps` (per run, held-out minus seen
  reconstruction error) and `heldout_gap_table` (each decoder against the
  baseline, Holm over the table's tests).
- (e) small objects: `gap_difference_table`, the decoder-minus-baseline gap in
  medians on one dataset minus the same gap on another, with a bootstrap
  interval; the two datasets may come from two studies
  (evaluation/gaps_cli.py).

Each table has a `format_*` function giving the strings of its Markdown table.
"""
import numpy as np
import pandas as pd
from scipy import stats

from evaluation import analysis
from evaluation import study as study_lib
from evaluation import tables

# tables' checks and number formats, so that the endpoints' tables read alike.
_check_columns = tables._check_columns  # pylint: disable=protected-access
_fmt, _fmt_p = tables._fmt, tables._fmt_p  # pylint: disable=protected-access
_fmt_diff = tables._fmt_diff  # pylint: disable=protected-access
# pylint: disable-next=protected-access
_median_difference = tables._median_difference

NLL = "reconstruction_loss"  # dlib's training result: NLL per image, nats
KL = "kl_loss"

# Notes of rows without a number, so that a reader sees why.
NOTE_NO_RUNS = "no runs at this β"
NOTE_NO_BASELINE = "no baseline runs at this β"


def _mean(values):
  return float(np.mean(values)) if len(values) else float("nan")


def _sd(values):
  # Sample standard deviation (ddof 1): NaN for a single seed.
  return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


# --- (c) Rate-distortion across beta ------------------------------------------


def run_table(df, metric="mig"):
  """One row per run: training statistics and the value of `metric`.

  Args:
    df: Tidy results DataFrame.
    metric: Metric whose value becomes the column named after it (NaN for
      runs without it).

  Returns:
    DataFrame with columns run_id, dataset, model, decoder, seed, beta,
    reconstruction_loss, kl_loss, elbo and `metric`.
  """
  columns = ["run_id", "dataset", "model", "decoder", "seed", "beta",
             NLL, KL, "elbo"]
  # FactorVAE records no elbo: a column the frame lacks is left out.
  runs = df[[c for c in columns if c in df.columns]].drop_duplicates("run_id")
  values = (df[df["metric"] == metric].drop_duplicates("run_id")
            .set_index("run_id")["value"].rename(metric))
  return runs.join(values, on="run_id").reset_index(drop=True)


def beta_summary(runs, columns):
  """Mean and sample standard deviation of `columns` at each beta.

  Args:
    runs: One row per run (`run_table`), e.g. one decoder's runs.
    columns: Columns to summarise.

  Returns:
    DataFrame indexed by beta (ascending, an unknown beta last) with columns
    `<column>_mean` and `<column>_sd` (ddof 1, NaN with one value; NaN values
    are left out) and `n`, the number of runs at the beta.
  """
  groups = runs.groupby("beta", dropna=False, sort=True)[list(columns)]
  summary = groups.mean().add_suffix("_mean").join(
      groups.std(ddof=1).add_suffix("_sd"))
  summary["n"] = groups.size()
  return summary


RD_COLUMNS_HEAD = ["dataset", "model", "beta", "decoder", "baseline", "n",
                   "nll_mean", "nll_sd", "kl_mean", "kl_sd"]
RD_COLUMNS_TAIL = ["nll_diff", "p_value", "p_holm", "min_p", "note"]


def rate_distortion_columns(metric="mig"):
  """The columns of `rate_distortion_table` for `metric`."""
  return RD_COLUMNS_HEAD + ["%s_mean" % metric, "%s_sd" % metric] + (
      RD_COLUMNS_TAIL)


def _rd_row(runs, metric):
  """A decoder's mean and sd of NLL, KL and `metric` over `runs` (one beta)."""
  row = {"n": len(runs)}
  for name, column in (("nll", NLL), ("kl", KL), (metric, metric)):
    values = runs[column].dropna().to_numpy(dtype=float)
    row["%s_mean" % name], row["%s_sd" % name] = _mean(values), _sd(values)
  return row


def _nll_test(values, base_values):
  """Difference of mean NLL, exact p and smallest possible p (one beta)."""
  nan = float("nan")
  if not base_values.size:
    return dict(nll_diff=nan, p_value=nan, min_p=nan, note=NOTE_NO_BASELINE)
  p_value, note = tables.mann_whitney(values, base_values)
  return dict(nll_diff=_mean(values) - _mean(base_values), p_value=p_value,
              min_p=(tables.min_exact_p(values.size, base_values.size)
                     if values.size else nan), note=note)


def _sweep_cells(df, baseline, metric):
  """The runs of each dataset and model: [(dataset, model, runs, decoders)],
  runs from `run_table`, decoders with the baseline first."""
  _check_columns(df, tables.REQUIRED_COLUMNS + (NLL, KL, "run_id"))
  runs = run_table(df, metric)
  return [(dataset, model, cell,
           tables.decoder_order(cell["decoder"], baseline))
          for (dataset, model), cell in runs.groupby(["dataset", "model"],
                                                     sort=True)]


def rate_distortion_table(df, baseline=study_lib.BASELINE, metric="mig"):
  """Claim (c): per beta, each decoder's NLL, KL and MIG, NLL vs the baseline.

  The paper's rate-distortion curves are the mean over seeds at each beta
  with one standard deviation; this is their table, with a test of the NLL
  at matched beta: the two-sided exact Mann-Whitney p of the decoder's
  seeds against the baseline's, Holm-adjusted over the betas of the decoder
  (and dataset and model). `min_p` is the smallest p the seed counts allow
  (`tables.min_exact_p`; 3 against 3 seeds: 0.1, so no beta can be
  significant alone).

  Args:
    df: Tidy results DataFrame (one row per run and metric, with each run's
      reconstruction_loss and kl_loss).
    baseline: The decoder every other one is compared with.
    metric: The disentanglement metric of the second curve.

  Returns:
    DataFrame with `rate_distortion_columns(metric)`: one row per dataset,
    model, beta and decoder (every decoder of the dataset and model at every
    beta; one without runs at a beta has n = 0 and a note). `nll_diff` is the
    decoder's mean NLL minus the baseline's; it, `p_value`, `p_holm` and
    `min_p` are NaN on baseline rows and where a group is missing, `note`
    says why.
  """
  nan = float("nan")
  rows = []
  for dataset, model, cell, decoders in _sweep_cells(df, baseline, metric):
    for beta, at_beta in cell.groupby("beta", dropna=False, sort=True):
      base_nll = at_beta.loc[at_beta["decoder"] == baseline, NLL].dropna()
      for decoder in decoders:
        sub = at_beta[at_beta["decoder"] == decoder]
        row = dict(dataset=dataset, model=model, beta=beta, decoder=decoder,
                   baseline=baseline, **_rd_row(sub, metric))
        test = dict(nll_diff=nan, p_value=nan, min_p=nan)
        if not len(sub):
          test["note"] = NOTE_NO_RUNS
        elif decoder == baseline:
          test["note"] = tables.NOTE_BASELINE
        else:
          test = _nll_test(sub[NLL].dropna().to_numpy(dtype=float),
                           base_nll.to_numpy(dtype=float))
        rows.append(dict(row, p_holm=nan, **test))
  table = pd.DataFrame(rows, columns=rate_distortion_columns(metric))
  # Holm over the betas: one family per dataset, model and decoder.
  families = table.groupby(["dataset", "model", "decoder"]).groups
  for family in families.values():
    table.loc[family, "p_holm"] = tables.holm(table.loc[family, "p_value"])
  return table


def _mean_sd(mean, sd, digits):
  if pd.isna(mean):
    return "-"
  if pd.isna(sd):
    return _fmt(mean, digits)
  return "%s ± %s" % (_fmt(mean, digits), _fmt(sd, digits))


def format_rate_distortion(table, metric="mig", metric_name="MIG"):
  """The strings of `rate_distortion_table`'s Markdown table.

  Args:
    table: Output of `rate_distortion_table`.
    metric: Its metric.
    metric_name: The metric's display name.

  Returns:
    DataFrame of strings.
  """
  baseline = table["baseline"].iloc[0] if len(table) else "baseline"
  return pd.DataFrame({
      "dataset": table["dataset"].astype(str),
      "model": table["model"].astype(str),
      "β": table["beta"].map(tables.format_beta),
      "decoder": table["decoder"].astype(str),
      "n": table["n"].astype(int).astype(str),
      "NLL mean ± sd": [_mean_sd(m, s, 2) for m, s in
                        zip(table["nll_mean"], table["nll_sd"])],
      "KL mean ± sd": [_mean_sd(m, s, 2) for m, s in
                       zip(table["kl_mean"], table["kl_sd"])],
      "%s mean ± sd" % metric_name: [
          _mean_sd(m, s, 3) for m, s in zip(table["%s_mean" % metric],
                                            table["%s_sd" % metric])],
      "NLL diff vs %s" % baseline: [_fmt(d, 2, sign=True)
                                    for d in table["nll_diff"]],
      "p": table["p_value"].map(_fmt_p),
      "p Holm (over β)": table["p_holm"].map(_fmt_p),
      "smallest possible p": table["min_p"].map(_fmt_p),
      "note": [("" if n == tables.NOTE_BASELINE else n)
               for n in table["note"]],
  })


POOLED_COLUMNS = ["dataset", "model", "decoder", "baseline", "betas",
                  "u_sum", "u_max", "prob_superiority", "p_value", "p_holm",
                  "note"]
NOTE_NO_SHARED_BETA = "no β with values of both decoders"


def _unknown_beta_note(count):
  return ("%d run%s of unknown β left out" % (count, "s" if count > 1 else "")
          if count else "")


def pooled_beta_table(df, baseline=study_lib.BASELINE, metric="mig"):
  """Claim (c)'s metric across the sweep: each decoder against the baseline.

  The per-β tests of `rate_distortion_table` cannot be significant with few
  seeds per β; a decoder whose metric lies above the baseline's at every β
  can. This tests whether the decoder's `metric` ranks above or below the
  baseline's across the β of the sweep, comparing runs only at the same β
  (`tables.stratified_exact_p`: the sum over β of the Mann-Whitney U, exact
  over every relabelling within each β; opposite effects at different β
  cancel). Holm adjusts over the table's rows, a family of its own. The
  NLL is not pooled: at the same β the decoders may use different rates
  (KL), and claim (c) compares NLL at the same rate.

  Args:
    df: Tidy results DataFrame (as `rate_distortion_table`).
    baseline: The decoder every other one is compared with.
    metric: The disentanglement metric of the second curve.

  Returns:
    DataFrame with POOLED_COLUMNS: one row per dataset, model and decoder
    other than the baseline. `betas` is the number of β with values of both
    decoders; `prob_superiority` is u_sum / u_max, the share of same-β
    (decoder, baseline) pairs in which the decoder's value is higher (ties
    one half). Runs of unknown β cannot be matched: the note counts them.
  """
  nan = float("nan")
  rows = []
  for dataset, model, cell, decoders in _sweep_cells(df, baseline, metric):
    for decoder in [d for d in decoders if d != baseline]:
      pair = cell[cell["decoder"].isin([decoder, baseline])]
      strata = []
      for _, at_beta in pair.groupby("beta", sort=True):  # NaN β left out
        values = at_beta.loc[at_beta["decoder"] == decoder, metric].dropna()
        base = at_beta.loc[at_beta["decoder"] == baseline, metric].dropna()
        if len(values) and len(base):
          strata.append((values.to_numpy(dtype=float),
                         base.to_numpy(dtype=float)))
      u_sum, u_max, p_value = tables.stratified_exact_p(strata)
      notes = [_unknown_beta_note(int(pair["beta"].isna().sum())),
               "" if strata else NOTE_NO_SHARED_BETA]
      rows.append(dict(
          dataset=dataset, model=model, decoder=decoder, baseline=baseline,
          betas=len(strata), u_sum=u_sum, u_max=u_max,
          prob_superiority=u_sum / u_max if strata else nan,
          p_value=p_value, p_holm=nan, note="; ".join(n for n in notes if n)))
  table = pd.DataFrame(rows, columns=POOLED_COLUMNS)
  table["p_holm"] = tables.holm(table["p_value"])
  return table


def format_pooled_beta(table):
  """The strings of `pooled_beta_table`'s Markdown table."""
  baseline = table["baseline"].iloc[0] if len(table) else "baseline"
  return pd.DataFrame({
      "dataset": table["dataset"].astype(str),
      "model": table["model"].astype(str),
      "decoder": table["decoder"].astype(str),
      "β compared": table["betas"].astype(int).astype(str),
      "U summed over β": [
          "-" if pd.isna(u) else "%g of %g" % (u, m)
          for u, m in zip(table["u_sum"], table["u_max"])],
      "P(above %s)" % baseline: [_fmt(x, 2) for x in table["prob_superiority"]],
      "p": table["p_value"].map(_fmt_p),
      "p Holm": table["p_holm"].map(_fmt_p),
      "note": table["note"],
  })


# --- (d) Held-out region ------------------------------------------------------

HELDOUT_GAP = "held-out minus seen error"  # the endpoint's metric label
SEEN, HELD_OUT = analysis.SPLITS
# The columns of `analysis.heldout_errors` (and its CSV) the gap needs.
HELDOUT_ERROR_COLUMNS = ("run_id", "model", "beta", "decoder", "seed",
                         "split", "error")


def heldout_gaps(errors):
  """Claim (d) per run: mean error on the held-out region minus on seen data.

  Args:
    errors: `analysis.heldout_errors`'s DataFrame (columns run_id, model,
      beta, decoder, seed, split, error; one row per run and split).

  Returns:
    DataFrame with columns run_id, model, beta, decoder, seed, seen,
    held_out and gap (held_out - seen; NaN if a split is missing), one row
    per run in the order of `errors`.

  Raises:
    ValueError: if `errors` lacks one of HELDOUT_ERROR_COLUMNS.
  """
  _check_columns(errors, HELDOUT_ERROR_COLUMNS)
  runs = errors.drop_duplicates("run_id")[
      ["run_id", "model", "beta", "decoder", "seed"]].reset_index(drop=True)
  for split, column in ((SEEN, "seen"), (HELD_OUT, "held_out")):
    error = errors[errors["split"] == split].drop_duplicates("run_id")
    runs[column] = runs["run_id"].map(error.set_index("run_id")["error"])
  runs["gap"] = runs["held_out"] - runs["seen"]
  return runs


HELDOUT_HOLM_COLUMN = "p Holm (over the table)"
HELDOUT_COLUMNS = ["model", "beta", "decoder", "baseline", "n", "gaps",
                   "median", "diff_median", "ci_low", "ci_high",
                   "prob_superiority", "p_value", "p_holm", "note"]


def _same_beta(betas, beta):
  """Rows of `betas` equal to `beta`; an unknown (NaN) beta matches NaN."""
  return betas.isna() if pd.isna(beta) else betas == beta


def _seed_values(gaps):
  """A decoder's per-seed gaps as text, by seed: "0: 1.2; 1: 3.4"."""
  rows = gaps.dropna(subset=["gap"]).sort_values("seed")
  return "; ".join("%d: %.4g" % (s, g) for s, g in zip(rows["seed"],
                                                      rows["gap"]))


def heldout_gap_table(gaps, baseline=study_lib.BASELINE):
  """Claim (d): each decoder's held-out gaps against the baseline's.

  The comparison table's statistics (`tables.comparison_table`) of the
  per-seed gaps: per model and beta, each decoder's median gap, the
  difference of medians against the baseline with its bootstrap percentile
  interval, P(sup) and the exact two-sided Mann-Whitney p. A smaller gap
  is better (less lost on the region never seen in training). With several
  models, betas or decoders the endpoint has one test each: `p_holm` is the
  p Holm-adjusted over every test of this table: a family of its own, apart
  from the comparison tables' families.

  Args:
    gaps: Output of `heldout_gaps`.
    baseline: The decoder every other one is compared with.

  Returns:
    DataFrame with HELDOUT_COLUMNS, one row per model, beta and decoder;
    `gaps` lists the decoder's per-seed gaps ("seed: gap"). A run without
    one of the splits is left out (its gap is NaN). `p_value` and `p_holm`
    are NaN where no test was computed (`note` says why).
  """
  tidy = gaps.assign(dataset="", metric=HELDOUT_GAP, value=gaps["gap"])
  # The gap is the table's only metric, so tables' primary family (its Holm)
  # is every test of this table.
  table = tables.comparison_table(tidy, baseline,
                                  primary_metrics=(HELDOUT_GAP,))
  table["gaps"] = [_seed_values(gaps[
      (gaps["model"] == m) & _same_beta(gaps["beta"], b) &
      (gaps["decoder"] == d)]) for m, b, d in zip(
          table["model"], table["beta"], table["decoder"])]
  return table[HELDOUT_COLUMNS]


def heldout_tests(table):
  """The number of tests Holm corrects over in `heldout_gap_table`'s table."""
  return int(table["p_value"].notna().sum())


def format_heldout_gaps(table):
  """The strings of `heldout_gap_table`'s Markdown table.

  With more than one test, "p Holm" beside "p" (with one they are equal).
  """
  baseline = table["baseline"].iloc[0] if len(table) else "baseline"
  strings = pd.DataFrame({
      "model": table["model"].astype(str),
      "β": table["beta"].map(tables.format_beta),
      "decoder": table["decoder"].astype(str),
      "n": table["n"].astype(int).astype(str),
      "gap per seed (seed: nats)": table["gaps"],
      "median gap": [_fmt(m, 2) for m in table["median"]],
      "diff vs %s [%d%% CI]" % (baseline,
                                round(100 * tables.CONFIDENCE_LEVEL)): [
          _fmt_diff(d, a, b, 2) for d, a, b in zip(
              table["diff_median"], table["ci_low"], table["ci_high"])],
      "P(sup)": [_fmt(x, 2) for x in table["prob_superiority"]],
      "p": table["p_value"].map(_fmt_p),
      "note": [("" if n == tables.NOTE_BASELINE else n)
               for n in table["note"]],
  })
  if heldout_tests(table) > 1:
    strings.insert(strings.columns.get_loc("p") + 1, HELDOUT_HOLM_COLUMN,
                   table["p_holm"].map(_fmt_p).to_numpy())
  return strings


# --- (e) Small objects: difference of differences -----------------------------

GAP_COLUMNS = ["model", "beta", "metric", "decoder", "baseline", "first",
               "second", "n_first", "n_first_baseline", "n_second",
               "n_second_baseline", "gap_first", "gap_second",
               "difference", "ci_low", "ci_high", "note"]


def _difference_of_gaps(first, first_base, second, second_base, axis=-1):
  """(median first - median first_base) - (median second - median ...)."""
  return (_median_difference(first, first_base, axis) -
          _median_difference(second, second_base, axis))


def gap_difference_ci(cells, n_resamples=tables.N_RESAMPLES,
                      seed=tables.BOOTSTRAP_SEED,
                      confidence_level=tables.CONFIDENCE_LEVEL):
  """Bootstrap percentile interval of a difference of two median gaps.

  Each of the four cells (decoder and baseline on each dataset) is resampled
  independently: their seeds are different runs. Percentile method, as
  `tables.median_difference_ci` and for the same reason.

  Args:
    cells: Sequence of 4 arrays: decoder and baseline values on the first
      dataset, then on the second.
    n_resamples: Number of bootstrap resamples.
    seed: Seed of the resampling generator.
    confidence_level: Coverage of the interval.

  Returns:
    Tuple (low, high); (NaN, NaN) when a cell has fewer than 2 values.
  """
  cells = [np.asarray(c, dtype=float) for c in cells]
  if min(c.size for c in cells) < 2:
    return float("nan"), float("nan")
  result = stats.bootstrap(
      cells, _difference_of_gaps, vectorized=True, paired=False,
      n_resamples=n_resamples, method="percentile",
      confidence_level=confidence_level,
      random_state=np.random.default_rng(seed))
  interval = result.confidence_interval
  return float(interval.low), float(interval.high)


def _cells(frame):
  """{(model, beta text, metric, decoder): values} and beta text -> beta."""
  data = frame[frame["value"].notna()]
  text = data["beta"].map(tables.format_beta)
  cells = {key: g["value"].to_numpy(dtype=float) for key, g in data.groupby(
      [data["model"], text, data["metric"], data["decoder"]])}
  return cells, dict(zip(text, data["beta"]))


def _gap_note(sizes, labels):
  """Why a row has no gap or no interval ("" if it has both)."""
  names = ("decoder", "baseline")
  missing = ["no %s runs on %s" % (names[i % 2], labels[i // 2])
             for i, n in enumerate(sizes) if n == 0]
  if missing:
    return "; ".join(missing)
  if min(sizes) < 2:
    return "n < 2 in a cell: interval not computed"
  return ""


def gap_difference_table(first, second, baseline=study_lib.BASELINE,
                         metrics=None, labels=("first", "second"),
                         n_resamples=tables.N_RESAMPLES,
                         seed=tables.BOOTSTRAP_SEED):
  """Claim (e): a decoder's gap over the baseline on one dataset minus another.

  Per model, beta, metric and decoder: the gap on each dataset is the
  decoder's median minus the baseline's, and `difference` is the first gap
  minus the second, with its bootstrap percentile interval
  (`gap_difference_ci`). For small objects against full size, a positive
  difference of a higher-is-better metric means a larger gain on small
  objects. No p-value: with a few seeds per cell the interval is the
  description.

  Args:
    first: Tidy results of the first dataset (columns of
      tables.REQUIRED_COLUMNS), e.g. one study's rows of one dataset.
    second: The same of the second dataset, from the same study or another
      (rows are matched by model, beta, metric and decoder).
    baseline: The decoder the gaps are measured from.
    metrics: Metric labels to compare (default: every metric of `first`
      or `second`), in this order.
    labels: Names of the two datasets in the table and in notes.
    n_resamples: Bootstrap resamples.
    seed: Seed of each row's bootstrap.

  Returns:
    DataFrame with GAP_COLUMNS, one row per model, beta, metric and
    non-baseline decoder found in either frame. A row whose cell has no runs
    (e.g. no baseline runs on one dataset) has NaN numbers and a note naming
    the missing cell; with fewer than 2 seeds in a cell, the interval is NaN.
  """
  for frame in (first, second):
    _check_columns(frame, tables.REQUIRED_COLUMNS)
  (cells_a, betas_a), (cells_b, betas_b) = _cells(first), _cells(second)
  betas = dict(betas_b, **betas_a)
  keys = sorted({k[:3] for k in list(cells_a) + list(cells_b)},
                key=lambda k: (k[0], betas[k[1]] if not pd.isna(betas[k[1]])
                               else np.inf, k[2]))
  if metrics is not None:
    order = list(metrics)
    keys = sorted([k for k in keys if k[2] in order],
                  key=lambda k: (order.index(k[2]),) + k[:2])
  empty = np.array([])
  nan = float("nan")
  rows = []
  for model, beta_text, metric in keys:
    decoders = [d for d in tables.decoder_order(
        [k[3] for k in list(cells_a) + list(cells_b)
         if k[:3] == (model, beta_text, metric)], baseline) if d != baseline]
    for decoder in decoders:
      cells = [c.get((model, beta_text, metric, d), empty)
               for c in (cells_a, cells_b) for d in (decoder, baseline)]
      sizes = [c.size for c in cells]
      gaps = [float(np.median(cells[i]) - np.median(cells[i + 1]))
              if min(sizes[i:i + 2]) else nan for i in (0, 2)]
      low, high = gap_difference_ci(cells, n_resamples, seed)
      rows.append(dict(
          model=model, beta=betas[beta_text], metric=metric, decoder=decoder,
          baseline=baseline, first=labels[0], second=labels[1],
          n_first=sizes[0], n_first_baseline=sizes[1], n_second=sizes[2],
          n_second_baseline=sizes[3], gap_first=gaps[0], gap_second=gaps[1],
          difference=gaps[0] - gaps[1], ci_low=low, ci_high=high,
          note=_gap_note(sizes, labels)))
  return pd.DataFrame(rows, columns=GAP_COLUMNS)


def format_gap_difference(table, digits=3):
  """The strings of `gap_difference_table`'s Markdown table."""
  first = table["first"].iloc[0] if len(table) else "first"
  second = table["second"].iloc[0] if len(table) else "second"
  baseline = table["baseline"].iloc[0] if len(table) else "baseline"
  return pd.DataFrame({
      "model": table["model"].astype(str),
      "β": table["beta"].map(tables.format_beta),
      "metric": table["metric"].astype(str),
      "decoder": table["decoder"].astype(str),
      "n on %s (decoder / %s)" % (first, baseline): [
          "%d / %d" % (a, b) for a, b in zip(table["n_first"],
                                             table["n_first_baseline"])],
      "n on %s (decoder / %s)" % (second, baseline): [
          "%d / %d" % (a, b) for a, b in zip(table["n_second"],
                                             table["n_second_baseline"])],
      "gap on %s" % first: [_fmt(g, digits, sign=True)
                            for g in table["gap_first"]],
      "gap on %s" % second: [_fmt(g, digits, sign=True)
                             for g in table["gap_second"]],
      "difference [%d%% CI]" % round(100 * tables.CONFIDENCE_LEVEL): [
          _fmt_diff(d, a, b, digits) for d, a, b in zip(
              table["difference"], table["ci_low"], table["ci_high"])],
      "note": table["note"],
  })
