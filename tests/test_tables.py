"""Tests of evaluation/tables.py on hand-computed numbers."""
import math

import numpy as np
import pandas as pd
import pytest

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
  assert "| +5.000 |" in markdown
  assert "| 0.0079 |" in markdown
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
  assert "diff vs broadcast" in strings.columns
  assert tables.format_beta(0.5) == "0.5"
  assert tables.format_beta(float("nan"), "unknown") == "unknown"
  # The default baseline is the study file's default.
  assert tables.comparison_table(df)["decoder"].iloc[0] == study_lib.BASELINE
