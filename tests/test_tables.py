"""Tests of evaluation/tables.py on hand-computed numbers."""
import math
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evaluation import markdown
from evaluation import study as study_lib
from evaluation import tables


def _results(values_by_decoder, metric="mig", dataset="dummy", model="vae",
             beta=1.0):
  rows = []
  for decoder, values in values_by_decoder.items():
    for seed, value in enumerate(values):
      rows.append(dict(run_id="%s_%s_%d" % (model, decoder, seed),
                       dataset=dataset, model=model, decoder=decoder,
                       seed=seed, beta=beta, metric=metric, value=value,
                       reconstruction_loss=1.0, kl_loss=1.0, elbo=-2.0,
                       model_dir="/nonexistent"))
  return pd.DataFrame(rows)


def _row(table, decoder, **where):
  sel = table["decoder"] == decoder
  for k, v in where.items():
    sel &= table[k] == v
  assert sel.sum() == 1, table
  return table[sel].iloc[0]


def test_known_numbers():
  df = _results({"deconv": [1, 2, 3, 4, 5], "broadcast": [6, 7, 8, 9, 10]})
  table = tables.comparison_table(df, baseline="deconv")
  assert list(table.columns) == tables.TABLE_COLUMNS
  assert list(table["decoder"]) == ["deconv", "broadcast"]  # baseline first
  base, other = _row(table, "deconv"), _row(table, "broadcast")
  assert (base["median"], base["q25"], base["q75"], base["n"]) == (3, 2, 4, 5)
  assert (other["median"], other["q25"], other["q75"], other["n"]) == (
      8, 7, 9, 5)
  assert other["diff_median"] == 5
  # Exact two-sided p-value: 2 of the C(10, 5) = 252 orderings are as extreme.
  assert other["p_value"] == pytest.approx(2 / 252, rel=1e-12)
  assert other["note"] == ""
  assert math.isnan(base["diff_median"]) and math.isnan(base["p_value"])


def test_difference_sign_and_symmetric_p():
  df = _results({"deconv": [6, 7, 8, 9, 10], "broadcast": [1, 2, 3, 4, 5]})
  row = _row(tables.comparison_table(df), "broadcast")
  assert row["diff_median"] == -5
  assert row["p_value"] == pytest.approx(2 / 252)


def test_groups_by_dataset_model_beta_metric_and_many_decoders():
  df = pd.concat([
      _results({"deconv": [0.1, 0.2, 0.3], "broadcast": [0.5, 0.6, 0.7],
                "other": [0.2, 0.3, 0.4]}, metric="mig"),
      _results({"deconv": [0.1, 0.2, 0.3], "broadcast": [0.5, 0.6, 0.7]},
               metric="dci"),
      _results({"deconv": [0.1, 0.2, 0.3], "broadcast": [0.5, 0.6, 0.7]},
               beta=4.0),
      _results({"deconv": [0.1, 0.2, 0.3], "broadcast": [0.5, 0.6, 0.7]},
               model="factor_vae", beta=10.0),
  ])
  table = tables.comparison_table(df)
  assert len(table) == 3 + 2 + 2 + 2
  row = _row(table, "other", metric="mig", beta=1.0)
  assert row["diff_median"] == pytest.approx(0.1)
  assert row["n"] == 3
  assert len(table[(table["beta"] == 4.0)]) == 2
  assert len(table[(table["model"] == "factor_vae")]) == 2


def test_degenerate_groups_do_not_crash():
  df = pd.concat([
      _results({"deconv": [0.5], "broadcast": [0.7]}, metric="mig"),
      _results({"deconv": [0.3, 0.3, 0.3], "broadcast": [0.3, 0.3]},
               metric="dci"),
      _results({"broadcast": [0.1, 0.2]}, metric="factor_vae"),
      _results({"deconv": [0.1, np.nan, 0.3], "broadcast": [0.4, 0.5]},
               dataset="nan_values"),
  ])
  table = tables.comparison_table(df)
  small = _row(table, "broadcast", metric="mig", dataset="dummy")
  assert math.isnan(small["p_value"]) and small["note"] == tables.NOTE_SMALL_N
  assert small["diff_median"] == pytest.approx(0.2)
  equal = _row(table, "broadcast", metric="dci")
  assert equal["p_value"] == 1.0 and equal["note"] == tables.NOTE_ALL_EQUAL
  no_base = _row(table, "broadcast", metric="factor_vae")
  assert math.isnan(no_base["p_value"]) and math.isnan(no_base["diff_median"])
  assert no_base["note"] == tables.NOTE_NO_BASELINE
  # NaN metric values (failed evaluations) are dropped from the counts.
  assert _row(table, "deconv", dataset="nan_values")["n"] == 2
  assert _row(table, "deconv", dataset="nan_values")["median"] == 0.2


def test_a_table_write_that_fails_leaves_the_old_files_whole(tmp_path,
                                                             monkeypatch):
  # A crash while writing (here: the LaTeX table fails) must not leave a
  # cut-short or empty table where a whole one was.
  df = _results({"deconv": [1, 2, 3], "broadcast": [6, 7, 8]})
  prefix = str(tmp_path / "cmp")
  paths = tables.write_tables(tables.comparison_table(df), prefix)
  before = {p: open(p, "rb").read() for p in paths}

  def fail(strings):
    raise RuntimeError("killed while writing")

  monkeypatch.setattr(tables, "to_latex", fail)
  bigger = pd.concat([df, _results({"deconv": [1, 2], "broadcast": [3, 4]},
                                   metric="dci")])
  with pytest.raises(RuntimeError):
    tables.write_tables(tables.comparison_table(bigger), prefix)
  assert open(paths[2], "rb").read() == before[paths[2]]
  # The others are each whole: old or new, never part of one.
  for path in paths[:2]:
    assert open(path, "rb").read() != b""
  assert sorted(os.listdir(tmp_path)) == ["cmp.csv", "cmp.md", "cmp.tex"]


def test_missing_column_is_reported():
  df = _results({"deconv": [1, 2]}).drop(columns=["beta"])
  with pytest.raises(ValueError, match="beta"):
    tables.comparison_table(df)


def test_write_tables_round_trip(tmp_path):
  df = pd.concat([
      _results({"deconv": [1, 2, 3, 4, 5], "broadcast": [6, 7, 8, 9, 10]},
               model="beta_vae"),
      _results({"deconv": [0.5], "broadcast": [0.7]}, metric="dci",
               model="beta_vae"),
  ])
  table = tables.comparison_table(df)
  paths = tables.write_tables(table, str(tmp_path / "sub" / "cmp"))
  assert [p.rsplit(".", 1)[1] for p in paths] == ["md", "csv", "tex"]

  back = pd.read_csv(paths[1], keep_default_na=False, na_values=[""])
  back["note"] = back["note"].fillna("")
  pd.testing.assert_frame_equal(back, table, check_dtype=False)

  markdown = open(paths[0]).read()
  assert "| 3.000 [2.000, 4.000] |" in markdown
  assert "| 8.000 [7.000, 9.000] |" in markdown
  assert "| +5.000 [+2.000, +8.000] |" in markdown
  assert "| 1.00 | 0.0079 | 0.0079 (primary) |" in markdown
  assert tables.NOTE_SMALL_N in markdown
  lines = markdown.strip().splitlines()
  assert len(lines) == 2 + len(table)
  assert len({line.count("|") for line in lines}) == 1  # same column count

  latex = open(paths[2]).read()
  assert latex.startswith(r"\begin{tabular}")
  assert latex.rstrip().endswith(r"\end{tabular}")
  assert r"beta\_vae" in latex and "beta_vae" not in latex
  body = [l for l in latex.splitlines() if l.endswith(r"\\")]
  assert len(body) == 1 + len(table)
  num_columns = len(tables.format_table(table).columns)
  assert {l.count("&") for l in body} == {num_columns - 1}


def test_latex_prints_a_tiny_p_as_less_than_not_as_inverted_exclamation():
  # "<" in LaTeX's default OT1 text encoding prints as "¡".
  assert tables.latex_escape("<1e-4") == r"\textless{}1e-4"
  assert tables.latex_escape("a > b") == r"a \textgreater{} b"


def test_markdown_is_the_shared_writer(tmp_path):
  table = tables.comparison_table(
      _results({"deconv": [1, 2, 3], "broadcast": [4, 5, 6]}))
  paths = tables.write_tables(table, str(tmp_path / "cmp"))
  with open(paths[0]) as f:
    assert f.read() == markdown.frame_to_markdown(tables.format_table(table))
  assert markdown.markdown_table(["a", "b"], [["x|y", 1]]) == [
      "| a | b |", "|---|---|", "| x\\|y | 1 |"]


def test_baseline_and_beta_formatting():
  df = _results({"deconv": [1, 2], "broadcast": [3, 4]}, beta=float("nan"))
  table = tables.comparison_table(df, baseline="broadcast")
  assert list(table["decoder"]) == ["broadcast", "deconv"]
  assert set(table["baseline"]) == {"broadcast"}
  strings = tables.format_table(table)
  assert list(strings["beta"]) == ["-", "-"]
  assert "diff vs broadcast [95% CI]" in strings.columns
  assert tables.format_beta(0.5) == "0.5"
  assert tables.format_beta(float("nan"), "unknown") == "unknown"
  # The default baseline is the study file's default.
  assert tables.comparison_table(df)["decoder"].iloc[0] == study_lib.BASELINE


def test_holm_on_known_values():
  np.testing.assert_allclose(tables.holm([0.01, 0.04, 0.03, 0.005]),
                             [0.03, 0.06, 0.06, 0.02])
  # NaN entries are not tests: m = 2 here, and they stay NaN.
  adjusted = tables.holm([0.02, np.nan, 0.04, np.nan])
  np.testing.assert_allclose(adjusted[[0, 2]], [0.04, 0.04])
  assert np.isnan(adjusted[[1, 3]]).all()
  assert list(tables.holm([0.5, 0.9])) == [1.0, 1.0]  # capped at 1
  assert tables.holm([]).size == 0


def test_min_exact_p_and_seeds_needed():
  assert tables.min_exact_p(5, 5) == pytest.approx(2 / 252, rel=1e-12)
  assert tables.min_exact_p(1, 1) == 1.0
  # scipy's exact test reaches the floor on fully separated samples.
  for n1, n2 in ((5, 5), (3, 5), (2, 2)):
    p = stats.mannwhitneyu(np.arange(n1) + 100, np.arange(n2),
                           alternative="two-sided", method="exact").pvalue
    assert p == pytest.approx(tables.min_exact_p(n1, n2), rel=1e-12)
  # 3 tests: n = 4 gives 3 * 2 / 70 = 0.086, n = 5 gives 3 * 2 / 252 = 0.024.
  assert tables.seeds_needed(3) == 5
  assert tables.seeds_needed(1) == 4  # 2 / 70 = 0.029; 2 / 20 = 0.1
  assert tables.seeds_needed(3, alpha=0.01) == 6  # 3 * 2 / 924 = 0.0065
  with pytest.raises(ValueError):
    tables.seeds_needed(0)


def test_prob_superiority():
  assert tables.prob_superiority([6, 7, 8], [1, 2, 3, 4]) == 1.0
  assert tables.prob_superiority([1, 2, 3], [6, 7]) == 0.0
  assert tables.prob_superiority([0.3, 0.3], [0.3, 0.3, 0.3]) == 0.5
  assert tables.prob_superiority([1, 2, 3], [1, 2, 3]) == 0.5
  a, b = [0.1, 0.5, 0.5, 0.9, 0.2], [0.5, 0.3, 0.05]
  u = stats.mannwhitneyu(a, b, alternative="two-sided").statistic
  assert tables.prob_superiority(a, b) == pytest.approx(u / 15)


def test_median_difference_ci():
  values, base = [0.61, 0.55, 0.70, 0.58, 0.66], [0.40, 0.52, 0.45, 0.38, 0.6]
  low, high = tables.median_difference_ci(values, base)
  observed = np.median(values) - np.median(base)
  assert low <= observed <= high and low < high
  assert tables.median_difference_ci(values, base) == (low, high)
  assert np.isnan(tables.median_difference_ci([0.5], base)).all()
  assert tables.median_difference_ci([0.3, 0.3], [0.3, 0.3]) == (0.0, 0.0)


def test_new_columns_and_families():
  frames = [_results({"deconv": [1, 2, 3, 4, 5], "broadcast": [6, 7, 8, 9, 10]},
                     metric=m) for m in ("mig", "dci", "sap")]
  frames.append(_results({"deconv": [0.5], "broadcast": [0.7]},
                         metric="dci", dataset="one_seed"))
  df = pd.concat(frames)
  table = tables.comparison_table(df, primary_metrics=("mig", "dci"))
  assert dict(zip(table["metric"], table["family"])) == {
      "dci": "primary", "mig": "primary", "sap": "secondary"}
  # Two primary tests (the one-seed cell is not one), one secondary test.
  assert _row(table, "broadcast", metric="mig")["p_holm"] == pytest.approx(
      2 * 2 / 252)
  assert _row(table, "broadcast", metric="sap")["p_holm"] == pytest.approx(
      2 / 252)
  small = _row(table, "broadcast", dataset="one_seed")
  assert np.isnan(small[["p_holm", "ci_low", "ci_high",
                         "prob_superiority"]].astype(float)).all()
  base = _row(table, "deconv", metric="mig")
  assert np.isnan(base[["p_holm", "ci_low", "prob_superiority"]].astype(
      float)).all()
  other = _row(table, "broadcast", metric="mig")
  assert other["prob_superiority"] == 1.0
  assert other["ci_low"] <= other["diff_median"] <= other["ci_high"]
  # Bit-for-bit reproducible, and the default families are the study's.
  pd.testing.assert_frame_equal(
      table, tables.comparison_table(df, primary_metrics=("mig", "dci")))
  default = tables.comparison_table(df)
  assert set(default[default["metric"].isin(
      study_lib.PRIMARY_METRICS)]["family"]) == {"primary"}
  assert set(default[default["metric"] == "sap"]["family"]) == {"secondary"}
  strings = tables.format_table(table)
  assert tables.HOLM_COLUMN in strings.columns
  assert set(strings[tables.HOLM_COLUMN]) == {
      "-", "0.016 (primary)", "0.0079 (secondary)"}


def test_datasets_in_a_given_order_with_the_same_numbers():
  df = pd.concat([
      _results({"deconv": [1, 2, 3], "broadcast": [4, 5, 6]}, dataset=d)
      for d in ("b_full", "a_small", "c_extra")])
  by_name = tables.comparison_table(df, baseline="deconv")
  assert list(dict.fromkeys(by_name["dataset"])) == ["a_small", "b_full",
                                                     "c_extra"]
  # The study's order; a dataset it does not list follows, by name.
  ordered = tables.comparison_table(df, baseline="deconv",
                                    dataset_order=["b_full", "a_small"])
  assert list(dict.fromkeys(ordered["dataset"])) == ["b_full", "a_small",
                                                     "c_extra"]
  assert list(ordered["decoder"]) == ["deconv", "broadcast"] * 3
  # Only the rows' order changes: Holm and the intervals are the same.
  pd.testing.assert_frame_equal(
      ordered.sort_values(["dataset", "decoder"]).reset_index(drop=True),
      by_name.sort_values(["dataset", "decoder"]).reset_index(drop=True))


@pytest.mark.parametrize("model,beta,expected", [
    ("factorvae", 30.0, "γ=30"), ("vae", 1.0, "β=1"), ("beta_vae", 0.5, "β=0.5"),
    ("dip_vae", float("nan"), "λ_od=-")])
def test_a_runs_strength_is_named_as_its_model_names_it(model, beta, expected):
  """FactorVAE's column value is its gamma: captions must not call it β."""
  assert tables.format_strength(model, beta) == expected
