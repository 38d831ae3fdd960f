"""The comparison tables' p-values are exact, also when seeds tie.

Expected values come from counting every split of the pooled values by hand
or by brute force (itertools), never from the function under test.
"""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evaluation import tables


def _u(x, y):
  """Mann-Whitney U of x against y: pairs with x above, ties one half."""
  return sum((a > b) + 0.5 * (a == b) for a in x for b in y)


def _brute_force_p(x, y):
  """Two-sided permutation p over all C(n1 + n2, n1) splits, by enumeration."""
  pooled = list(x) + list(y)
  observed = _u(x, y)
  us = []
  for chosen in itertools.combinations(range(len(pooled)), len(x)):
    rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
    us.append(_u([pooled[i] for i in chosen], rest))
  us = np.array(us)
  upper = np.mean(us >= observed - 1e-12)
  lower = np.mean(us <= observed + 1e-12)
  return min(1.0, 2 * min(upper, lower))


def test_known_value_with_a_tie_counted_by_hand():
  # Pooled 1, 2, 2, 3: mid-ranks 1, 2.5, 2.5, 4. The 6 splits give the first
  # group rank sums 3.5, 3.5, 5, 5, 6.5, 6.5; the observed 3.5 is the
  # smallest, reached by 2 splits: p = 2 * 2/6.
  assert tables.exact_mann_whitney_p([1, 2], [2, 3]) == pytest.approx(2 / 3)


def test_complete_separation_with_ties_reaches_the_smallest_p():
  # As the FactorVAE score of docs/cpu_evidence: every seed of one decoder
  # above every seed of the other, some seeds tied within a group. Only 2 of
  # the C(12, 6) = 924 splits are that extreme.
  broadcast = [0.474, 0.474, 0.5, 0.454, 0.46, 0.52]
  deconv = [0.314, 0.314, 0.295, 0.32, 0.30, 0.31]
  p = tables.exact_mann_whitney_p(broadcast, deconv)
  assert p == pytest.approx(2 / 924, rel=1e-12)
  assert p == pytest.approx(tables.min_exact_p(6, 6), rel=1e-12)
  # scipy's default falls back to the normal approximation here.
  approx = stats.mannwhitneyu(broadcast, deconv, alternative="two-sided")
  assert approx.pvalue > 2 * p


@pytest.mark.parametrize("n1, n2, levels, seed", [
    (6, 6, 4, 0), (6, 6, 3, 1), (4, 7, 3, 2), (5, 5, 2, 3), (3, 8, 5, 4),
    (2, 2, 2, 5)])
def test_matches_brute_force_enumeration_with_ties(n1, n2, levels, seed):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, levels, n1) / 10
  y = rng.integers(0, levels, n2) / 10 + 0.05 * rng.integers(0, 2, n2)
  assert tables.exact_mann_whitney_p(x, y) == pytest.approx(
      _brute_force_p(x, y), rel=1e-12)


def test_matches_scipys_exact_permutation_test_with_ties():
  rng = np.random.default_rng(7)
  x, y = rng.integers(0, 5, 6), rng.integers(1, 6, 6)

  def u(a, b, axis):
    return stats.mannwhitneyu(a, b, axis=axis).statistic

  expected = stats.permutation_test(
      (x, y), u, permutation_type="independent", vectorized=True,
      n_resamples=np.inf, alternative="two-sided").pvalue
  assert tables.exact_mann_whitney_p(x, y) == pytest.approx(expected,
                                                            rel=1e-12)


def test_without_ties_equals_scipys_exact_mann_whitney():
  rng = np.random.default_rng(3)
  for n1, n2 in ((6, 6), (10, 10), (5, 8)):
    x, y = rng.normal(size=n1), rng.normal(0.7, size=n2)
    expected = stats.mannwhitneyu(x, y, alternative="two-sided",
                                  method="exact").pvalue
    assert tables.exact_mann_whitney_p(x, y) == pytest.approx(expected,
                                                              rel=1e-12)


def test_exact_for_groups_too_large_to_enumerate():
  # 30 + 30 seeds: 1.2e17 splits, counted, not sampled. Complete separation
  # with ties inside each group still gives exactly 2 / C(60, 30).
  x = np.repeat([5., 6., 7.], 10)
  y = np.repeat([1., 2., 3.], 10)
  assert tables.exact_mann_whitney_p(x, y) == pytest.approx(
      2 / math.comb(60, 30), rel=1e-12)


def test_comparison_table_prints_the_exact_p():
  broadcast = [0.474, 0.474, 0.5, 0.454, 0.46, 0.52]
  deconv = [0.314, 0.314, 0.295, 0.32, 0.30, 0.31]
  rows = [dict(dataset="d", model="vae", decoder=dec, seed=s, beta=1.0,
               metric="factor_vae", value=v)
          for dec, vals in (("broadcast", broadcast), ("deconv", deconv))
          for s, v in enumerate(vals)]
  table = tables.comparison_table(pd.DataFrame(rows), "deconv", ("factor_vae",),
                                  n_resamples=99)
  row = table[table["decoder"] == "broadcast"].iloc[0]
  assert row["p_value"] == pytest.approx(2 / 924, rel=1e-12)
  assert tables.format_table(table)["p"].tolist()[1] == "0.0022"


# --- Stratified by beta (the rate-distortion sweep tested at once) ------------


def _brute_force_stratified_p(strata):
  """Two-sided p over every relabelling within every stratum, by enumeration."""
  per_stratum = []
  for x, y in strata:
    pooled = list(x) + list(y)
    us = []
    for chosen in itertools.combinations(range(len(pooled)), len(x)):
      rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
      us.append(_u([pooled[i] for i in chosen], rest))
    per_stratum.append(us)
  observed = sum(_u(x, y) for x, y in strata)
  sums = np.array([sum(c) for c in itertools.product(*per_stratum)])
  upper = np.mean(sums >= observed - 1e-12)
  lower = np.mean(sums <= observed + 1e-12)
  return min(1.0, 2 * min(upper, lower))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_p_matches_brute_force_enumeration_with_ties(seed):
  rng = np.random.default_rng(seed)
  strata = [(rng.integers(0, 3, n1) / 10, rng.integers(0, 4, n2) / 10)
            for n1, n2 in ((3, 3), (2, 4), (3, 2))]
  u_sum, u_max, p = tables.stratified_exact_p(strata)
  assert p == pytest.approx(_brute_force_stratified_p(strata), rel=1e-12)
  assert u_sum == sum(_u(x, y) for x, y in strata)
  assert u_max == 9 + 8 + 6


def test_stratified_p_of_one_stratum_is_the_plain_exact_p():
  x, y = [0.2, 0.5, 0.5, 0.9], [0.1, 0.5, 0.3]
  assert tables.stratified_exact_p([(x, y)])[2] == tables.exact_mann_whitney_p(
      x, y)


def test_stratified_p_only_relabels_within_a_stratum():
  # Every stratum completely separated (3 against 3): 2 / 20^4, far below
  # the 0.1 that one stratum alone can reach; strata with an empty group
  # test nothing.
  strata = [([4, 5, 6], [1, 2, 3])] * 4 + [([], [1, 2])]
  assert tables.stratified_exact_p(strata) == (36.0, 36.0, pytest.approx(
      2 / 20 ** 4, rel=1e-12))
  assert all(math.isnan(v) for v in tables.stratified_exact_p([([1], [])]))
  with pytest.raises(ValueError, match="NaN"):
    tables.stratified_exact_p([([1.0, float("nan")], [2.0])])
