"""Tests of evaluation/endpoints.py, evaluation/gaps_cli.py and the report's
sections of the claims' endpoints, on synthetic tidy frames with known answers.

Pure pandas: no TensorFlow, no trained model.
"""
import dataclasses
import math
import os

import numpy as np
import pandas as pd
import pytest

from evaluation import aggregate
from evaluation import compare_cli
from evaluation import endpoints
from evaluation import figure_runs
from evaluation import figures
from evaluation import gaps_cli
from evaluation import layout
from evaluation import report
from evaluation import study as study_lib
from evaluation import tables
from tests.helpers import REPO
from tests.helpers import study_toml


def _run(dataset, decoder, seed, beta=1.0, model="vae"):
  """A study_lib.Run with only the fields the report reads filled in."""
  return study_lib.Run(
      run_id="%s-%s-%s-%g-seed%d" % (dataset, model, decoder, beta, seed),
      dataset=dataset, model=model, decoder=decoder, seed=seed,
      sweep=(("vae.beta", beta),), model_configs=(), train_bindings=(),
      dataset_bindings=(), postprocess_config="", metric_configs=(),
      metric_bindings=())


def _frame(cells, metric="mig", model="vae"):
  """Tidy results: {(dataset, beta, decoder): [(value, nll, kl)] by seed}."""
  rows = []
  for (dataset, beta, decoder), seeds in cells.items():
    for seed, (value, nll, kl) in enumerate(seeds):
      run = _run(dataset, decoder, seed, beta, model)
      rows.append(dict(run_id=run.run_id, dataset=dataset, model=model,
                       decoder=decoder, seed=seed, beta=beta, metric=metric,
                       value=value, loss=nll + kl, reconstruction_loss=nll,
                       regularizer=kl, kl_loss=kl, elbo=-(nll + kl),
                       model_dir="runs/%s/model" % run.run_id))
  return pd.DataFrame(rows)


def _row(table, **where):
  sel = np.ones(len(table), bool)
  for k, v in where.items():
    sel &= (table[k].isna() if isinstance(v, float) and math.isnan(v)
            else table[k] == v).to_numpy()
  assert sel.sum() == 1, table
  return table[sel].iloc[0]


# --- (c) Rate-distortion across beta -----------------------------------------


def _sweep(betas=(0.5, 1.0, 2.0, 4.0), shift=-10.0):
  """deconv NLL 100, 101, 102 at every beta; broadcast the same + shift."""
  cells = {}
  for beta in betas:
    cells[("ds", beta, "deconv")] = [
        (0.1 * s, 100.0 + s, 10.0 * (s + 1) / beta) for s in range(3)]
    cells[("ds", beta, "broadcast")] = [
        (0.2 + 0.1 * s, 100.0 + s + shift, 5.0 * (s + 1) / beta)
        for s in range(3)]
  return _frame(cells)


def test_beta_summary_means_and_sample_sd_by_beta():
  runs = endpoints.run_table(_sweep())
  deconv = runs[runs["decoder"] == "deconv"]
  summary = endpoints.beta_summary(deconv, ["reconstruction_loss", "kl_loss"])
  assert list(summary.index) == [0.5, 1.0, 2.0, 4.0]
  assert list(summary["n"]) == [3] * 4
  np.testing.assert_allclose(summary["reconstruction_loss_mean"], 101.0)
  np.testing.assert_allclose(summary["reconstruction_loss_sd"], 1.0)  # ddof 1
  np.testing.assert_allclose(summary["kl_loss_mean"], [40, 20, 10, 5])
  # An unknown beta comes last, one seed has no sd.
  one = deconv.iloc[:1].assign(beta=float("nan"))
  summary = endpoints.beta_summary(pd.concat([one, deconv.iloc[3:4]]),
                                   ["kl_loss"])
  assert summary.index[0] == 1.0 and math.isnan(summary.index[1])
  assert summary["kl_loss_sd"].isna().all()


def test_rate_distortion_table_known_numbers():
  table = endpoints.rate_distortion_table(_sweep(), baseline="deconv")
  assert list(table.columns) == endpoints.rate_distortion_columns("mig")
  assert len(table) == 4 * 2
  assert list(table["decoder"][:2]) == ["deconv", "broadcast"]
  base = _row(table, beta=1.0, decoder="deconv")
  assert (base["n"], base["nll_mean"], base["nll_sd"]) == (3, 101.0, 1.0)
  assert base["kl_mean"] == pytest.approx(20.0)
  assert base["mig_mean"] == pytest.approx(0.1)
  assert math.isnan(base["p_value"]) and base["note"] == tables.NOTE_BASELINE
  for beta in (0.5, 1.0, 2.0, 4.0):
    row = _row(table, beta=beta, decoder="broadcast")
    assert row["nll_diff"] == pytest.approx(-10.0)
    # 3 against 3, completely separated: the smallest p there is, 2/C(6,3).
    assert row["p_value"] == pytest.approx(0.1)
    assert row["min_p"] == pytest.approx(0.1)
    # Holm over the 4 betas: 4 x 0.1.
    assert row["p_holm"] == pytest.approx(0.4)
    assert row["note"] == ""


def test_pooled_beta_table_tests_the_whole_sweep_at_once():
  # broadcast's MIG (0.2, 0.3, 0.4 against 0, 0.1, 0.2) at all 4 betas, 3
  # seeds each: one tie per beta, 8.5 of 9 pairs above at each, 34 of 36.
  # No beta alone could reach below 0.1; the sweep at once can.
  table = endpoints.pooled_beta_table(_sweep(), baseline="deconv")
  assert list(table.columns) == endpoints.POOLED_COLUMNS
  assert len(table) == 1
  mig = table.iloc[0]
  assert (mig["betas"], mig["u_sum"], mig["u_max"]) == (4, 34.0, 36.0)
  assert mig["prob_superiority"] == 34 / 36
  assert mig["p_value"] < 0.01 and mig["p_holm"] == mig["p_value"]
  assert mig["note"] == ""
  strings = endpoints.format_pooled_beta(table)
  assert list(strings["U summed over β"]) == ["34 of 36"]
  assert list(strings["P(above deconv)"]) == ["0.94"]


def test_pooled_beta_table_compares_runs_only_at_the_same_beta():
  # Runs at a beta the baseline lacks do not enter; runs of unknown beta
  # are counted in the note; without a shared beta (or without MIG values)
  # the row says so.
  cells = {("ds", 1.0, "deconv"): [(0.1, 100.0, 5.0)] * 3,
           ("ds", 1.0, "broadcast"): [(0.3, 90.0, 5.0)] * 3,
           ("ds", 2.0, "broadcast"): [(0.0, 200.0, 5.0)] * 3,
           ("ds", float("nan"), "deconv"): [(0.9, 90.0, 5.0)] * 2,
           ("other", 1.0, "broadcast"): [(0.3, 90.0, 5.0)] * 3,
           ("nomig", 1.0, "broadcast"): [(float("nan"), 90.0, 5.0)] * 3,
           ("nomig", 1.0, "deconv"): [(float("nan"), 90.0, 5.0)] * 3}
  frame = _frame(cells)
  frame["run_id"] = frame["run_id"] + frame.index.astype(str)  # NaN beta
  table = endpoints.pooled_beta_table(frame, baseline="deconv")
  ds = _row(table, dataset="ds")
  assert (ds["betas"], ds["u_sum"], ds["u_max"]) == (1, 9.0, 9.0)
  assert ds["p_value"] == pytest.approx(0.1)
  assert ds["note"] == "2 runs of unknown β left out"
  for dataset in ("other", "nomig"):
    row = _row(table, dataset=dataset)
    assert row["betas"] == 0 and math.isnan(row["p_value"])
    assert row["note"] == endpoints.NOTE_NO_SHARED_BETA


def test_pooled_beta_table_reproduces_claim_c_findings():
  # docs/claims/rate_distortion/findings.md: MIG across beta, U 29 of 36,
  # p = 0.020 (computed there by hand before this table existed).
  frame = pd.read_csv(os.path.join(
      REPO, "docs", "claims", "rate_distortion", "results", "results.csv"))
  table = endpoints.pooled_beta_table(frame, baseline="deconv")
  mig = table.iloc[0]
  assert len(table) == 1
  assert (mig["u_sum"], mig["u_max"]) == (29.0, 36.0)
  assert mig["p_value"] == pytest.approx(0.019525, rel=1e-9)


def test_the_floor_sentence_follows_holm_per_decoder(tmp_path):
  # 4 seeds: one beta alone can reach 0.029. paper_broadcast was tested at
  # one beta only, so its p Holm (over its betas) can be below 0.05: the
  # report must not say that no p Holm can.
  cells = {}
  for beta in (1.0, 2.0):
    for decoder, base in (("deconv", 0.1), ("broadcast", 0.5)):
      cells[("ds", beta, decoder)] = [
          (base + 0.01 * s, 100.0 - 10 * base + s, 10.0 / beta)
          for s in range(4)]
  text = "\n".join(report._rate_distortion_by_beta(
      _report(_frame(cells), tmp_path)))
  assert ("but Holm over each decoder's 2 β multiplies its smallest p by "
          "their number, so no p Holm can be below 0.05." in text)
  cells[("ds", 1.0, "paper_broadcast")] = [(0.4 + 0.01 * s, 80.0 + s, 9.0)
                                           for s in range(4)]
  text = "\n".join(report._rate_distortion_by_beta(
      _report(_frame(cells), tmp_path)))
  table = pd.read_csv(layout.rate_distortion_csv(str(tmp_path)))
  assert _row(table, beta=1.0, decoder="paper_broadcast")["p_holm"] < 0.05
  assert "no p Holm can be below" not in text


def test_rate_distortion_identical_groups_give_p_1():
  table = endpoints.rate_distortion_table(_sweep(betas=(1.0, 2.0), shift=0),
                                          baseline="deconv")
  row = _row(table, beta=2.0, decoder="broadcast")
  assert row["nll_diff"] == 0 and row["p_value"] == 1.0


def test_rate_distortion_missing_decoder_is_a_marked_row():
  cells = {("ds", 1.0, "deconv"): [(0.1, 100.0, 5.0)] * 3,
           ("ds", 2.0, "deconv"): [(0.1, 100.0, 5.0)] * 3,
           ("ds", 2.0, "broadcast"): [(0.1, 90.0, 5.0)] * 3,
           ("ds", 4.0, "broadcast"): [(0.1, 90.0, 5.0)] * 3,
           ("ds", 8.0, "broadcast"): [(0.1, 90.0, 5.0)],
           ("ds", 8.0, "deconv"): [(0.1, 99.0, 5.0)]}
  table = endpoints.rate_distortion_table(_frame(cells), baseline="deconv")
  no_runs = _row(table, beta=1.0, decoder="broadcast")
  assert no_runs["n"] == 0 and no_runs["note"] == endpoints.NOTE_NO_RUNS
  assert math.isnan(no_runs["nll_mean"])
  assert _row(table, beta=4.0, decoder="deconv")["note"] == (
      endpoints.NOTE_NO_RUNS)
  alone = _row(table, beta=4.0, decoder="broadcast")
  assert alone["note"] == endpoints.NOTE_NO_BASELINE
  assert math.isnan(alone["p_value"]) and math.isnan(alone["nll_diff"])
  one_seed = _row(table, beta=8.0, decoder="broadcast")
  assert one_seed["note"] == tables.NOTE_SMALL_N
  assert one_seed["nll_diff"] == pytest.approx(-9.0)
  # Only beta 2 has a test: Holm over one p leaves it as it is.
  tested = _row(table, beta=2.0, decoder="broadcast")
  assert tested["p_holm"] == tested["p_value"]
  strings = endpoints.format_rate_distortion(table)
  assert _row(strings, β="1", decoder="broadcast")["NLL mean ± sd"] == "-"
  assert _row(strings, β="8", decoder="deconv")["NLL mean ± sd"] == "99.00"
  assert _row(strings, β="2", decoder="deconv")["NLL mean ± sd"] == (
      "100.00 ± 0.00")


def test_rate_distortion_figure_draws_mean_and_sd(tmp_path):
  from evaluation import figures  # pylint: disable=g-import-not-at-top
  fig = figures.rate_distortion_figure(_sweep(), baseline="deconv")
  ax = fig.axes[0]  # NLL against KL
  deconv, broadcast = ax.containers  # one error-bar set per decoder
  # Points at the mean over seeds, in beta order.
  x, y = deconv.lines[0].get_data()
  np.testing.assert_allclose(x, [40, 20, 10, 5])
  np.testing.assert_allclose(y, [101.0] * 4)
  # Bars of one sample sd: NLL sd 1, KL sd 10 / beta.
  bars = [np.asarray(c.get_segments()) for c in deconv.lines[2]]
  widths = [b[:, 1] - b[:, 0] for b in bars]  # (dx, dy) of each bar
  horizontal = [w for w in widths if np.all(w[:, 1] == 0)][0]
  vertical = [w for w in widths if np.all(w[:, 0] == 0)][0]
  np.testing.assert_allclose(horizontal[:, 0],
                             2 * 10.0 / np.array([0.5, 1, 2, 4]))
  np.testing.assert_allclose(vertical[:, 1], 2.0)
  # Every beta labelled, per decoder.
  labels = [t.get_text() for t in ax.texts]
  assert sorted(labels) == sorted(["β=%g" % b for b in (0.5, 1, 2, 4)] * 2)
  # The line joins the betas in order (x = mean KL falls as beta grows).
  line = [l for l in ax.lines if l.get_linestyle() == "-"][0]
  np.testing.assert_allclose(line.get_xdata(), [40, 20, 10, 5])
  figures.plot_rate_distortion(_sweep(), str(tmp_path / "rd.png"), "deconv")


# --- (d) Held-out region -----------------------------------------------------


def _errors(gaps_by_decoder, seen=10.0, drop=()):
  rows = []
  for decoder, gaps in gaps_by_decoder.items():
    for seed, gap in enumerate(gaps):
      for split, error in (("seen", seen + seed), ("held-out",
                                                   seen + seed + gap)):
        if (decoder, seed, split) in drop:
          continue
        rows.append(dict(run_id="%s-%d" % (decoder, seed), model="vae",
                         beta=1.0, decoder=decoder, seed=seed, split=split,
                         error=error))
  return pd.DataFrame(rows)


def test_heldout_gaps_per_run():
  gaps = endpoints.heldout_gaps(_errors(
      {"deconv": [5.0, 6.0], "broadcast": [1.0, 2.0]},
      drop={("broadcast", 1, "held-out")}))
  assert list(gaps["run_id"]) == ["deconv-0", "deconv-1", "broadcast-0",
                                  "broadcast-1"]
  np.testing.assert_allclose(gaps["gap"][:3], [5.0, 6.0, 1.0])
  assert gaps["seen"][1] == 11.0 and gaps["held_out"][1] == 17.0
  assert math.isnan(gaps["gap"][3])  # no held-out error: no gap


def test_heldout_gap_table_known_numbers():
  errors = _errors({"deconv": [5.0, 6.0, 7.0], "broadcast": [1.0, 2.0, 3.0],
                    "same": [5.0, 6.0, 7.0]})
  table = endpoints.heldout_gap_table(endpoints.heldout_gaps(errors),
                                      baseline="deconv")
  assert list(table.columns) == endpoints.HELDOUT_COLUMNS
  assert list(table["decoder"]) == ["deconv", "broadcast", "same"]
  base = _row(table, decoder="deconv")
  assert base["median"] == 6.0 and base["gaps"] == "0: 5; 1: 6; 2: 7"
  row = _row(table, decoder="broadcast")
  assert row["diff_median"] == pytest.approx(-4.0)
  assert row["p_value"] == pytest.approx(0.1)  # 3 vs 3 separated
  assert row["prob_superiority"] == 0.0
  assert row["ci_low"] <= -4.0 <= row["ci_high"]
  same = _row(table, decoder="same")
  assert same["diff_median"] == 0 and same["p_value"] == 1.0
  # Two tests: Holm over both (0.1 and 1 -> 0.2 and 1).
  assert row["p_holm"] == pytest.approx(0.2) and same["p_holm"] == 1.0
  assert math.isnan(base["p_holm"])
  strings = endpoints.format_heldout_gaps(table)
  assert _row(strings, decoder="broadcast")["p"] == "0.1"
  assert _row(strings, decoder="broadcast")[
      endpoints.HELDOUT_HOLM_COLUMN] == "0.2"


def test_heldout_p_is_holm_corrected_when_the_study_sweeps_beta(tmp_path):
  parts = []
  for beta in (1.0, 4.0):
    part = _errors({"deconv": [5.0, 6.0, 7.0], "broadcast": [1.0, 2.0, 3.0]})
    parts.append(part.assign(beta=beta, run_id=part["run_id"] +
                             "-beta%g" % beta))
  errors = pd.concat(parts, ignore_index=True)
  table = endpoints.heldout_gap_table(endpoints.heldout_gaps(errors),
                                      baseline="deconv")
  tested = table[table["decoder"] == "broadcast"]
  assert list(tested["beta"]) == [1.0, 4.0]
  assert list(tested["p_value"]) == pytest.approx([0.1, 0.1])
  assert list(tested["p_holm"]) == pytest.approx([0.2, 0.2])
  text = "\n".join(report._heldout_gap_lines(errors, "deconv",
                                             str(tmp_path)))
  header = [l for l in text.splitlines() if l.startswith("| model")]
  assert len(header) == 1
  assert "| p | %s | note |" % endpoints.HELDOUT_HOLM_COLUMN in header[0]
  assert text.count("| 0.1 | 0.2 |") == 2
  assert ("one test per model, β and decoder; and %s, the p corrected with "
          "Holm's method over the table's 2 tests (every model, β and "
          "decoder against `deconv`: a family of its own, apart from the "
          "comparison tables' families)." % endpoints.HELDOUT_HOLM_COLUMN
          in text)
  assert ("With 3 against 3 seeds the smallest possible p is 0.1; Holm "
          "multiplies the smallest of the 2 p-values by 2." in text)
  saved = pd.read_csv(layout.heldout_gaps_csv(str(tmp_path)))
  assert list(saved.columns) == endpoints.HELDOUT_COLUMNS
  # One test: p alone, nothing to correct.
  one = "\n".join(report._heldout_gap_lines(
      errors[errors["beta"] == 1.0], "deconv", str(tmp_path)))
  assert "Holm" not in one and "one test per model, β and decoder." in one


def test_heldout_gap_table_without_baseline_runs():
  table = endpoints.heldout_gap_table(endpoints.heldout_gaps(_errors(
      {"broadcast": [1.0, 2.0]})), baseline="deconv")
  assert list(table["note"]) == [tables.NOTE_NO_BASELINE]
  assert math.isnan(table["p_value"][0])


# --- (e) Difference of differences -------------------------------------------


def _two_datasets(small_gap=0.3, full_gap=0.1, seeds=5, drop=()):
  spread = np.array([0.0, 0.01, 0.03, 0.02, 0.05, 0.04])[:seeds]
  cells = {}
  for dataset, gap in (("small", small_gap), ("full", full_gap)):
    for decoder, shift in (("deconv", 0.0), ("broadcast", gap)):
      if (dataset, decoder) not in drop:
        cells[(dataset, 1.0, decoder)] = [
            (0.2 + shift + v, 100.0, 10.0) for v in spread]
  return _frame(cells)


def test_gap_difference_known_difference():
  frame = _two_datasets()
  small, full = (frame[frame["dataset"] == d] for d in ("small", "full"))
  table = endpoints.gap_difference_table(small, full, "deconv", ["mig"],
                                         labels=("small", "full"))
  assert list(table.columns) == endpoints.GAP_COLUMNS
  row = table.iloc[0]
  assert (row["gap_first"], row["gap_second"]) == (pytest.approx(0.3),
                                                   pytest.approx(0.1))
  assert row["difference"] == pytest.approx(0.2)
  assert row["ci_low"] <= 0.2 <= row["ci_high"] and row["note"] == ""
  assert (row["n_first"], row["n_second_baseline"]) == (5, 5)
  # The other way round: the difference and its interval change sign.
  back = endpoints.gap_difference_table(full, small, "deconv", ["mig"])
  assert back["difference"][0] == pytest.approx(-0.2)
  assert back["ci_low"][0] == pytest.approx(-row["ci_high"])
  # Equal gaps: difference 0, inside the interval.
  same = endpoints.gap_difference_table(small, small, "deconv")
  assert same["difference"][0] == 0
  assert same["ci_low"][0] < 0 < same["ci_high"][0]


def test_gap_difference_ci_resamples_each_cell():
  # One cell varies, three are constant: the interval is the spread of that
  # cell's resampled medians (1..5 -> within [1, 5]), shifted.
  cells = [[1.0, 2.0, 3.0, 4.0, 5.0], [0.0] * 5, [0.0] * 5, [0.0] * 5]
  low, high = endpoints.gap_difference_ci(cells)
  assert 1.0 <= low < 3.0 < high <= 5.0
  assert endpoints.gap_difference_ci(cells) == (low, high)  # seeded
  assert all(math.isnan(x) for x in endpoints.gap_difference_ci(
      [[1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]))


def test_gap_difference_missing_baseline_is_a_marked_row():
  frame = _two_datasets(drop={("full", "deconv")})
  table = endpoints.gap_difference_table(
      frame[frame["dataset"] == "small"], frame[frame["dataset"] == "full"],
      "deconv", labels=("small", "full"))
  row = table.iloc[0]
  assert row["note"] == "no baseline runs on full"
  assert math.isnan(row["difference"]) and math.isnan(row["ci_low"])
  assert row["gap_first"] == pytest.approx(0.3)
  assert "no baseline runs on full" in endpoints.format_gap_difference(
      table)["note"][0]


def test_gaps_cli_compares_two_results_files(tmp_path, capsys):
  frame = _two_datasets()
  first, second = tmp_path / "a.csv", tmp_path / "b.csv"
  frame[frame["dataset"] == "small"].to_csv(first, index=False)
  frame.to_csv(second, index=False)
  out_csv = tmp_path / "gaps.csv"
  assert gaps_cli.main([str(first), "small", str(second), "full",
                        "--metric", "mig", "--csv", str(out_csv)]) == 0
  text = capsys.readouterr().out
  assert "| vae | 1 | mig | broadcast |" in text and "+0.200 [" in text
  assert pd.read_csv(out_csv)["difference"][0] == pytest.approx(0.2)
  # A dataset the file lacks: a message naming what it has, exit 2.
  assert gaps_cli.main([str(first), "full", str(second), "full"]) == 2
  assert "has no rows of dataset 'full' (it has small)" in (
      capsys.readouterr().err)


def test_gaps_cli_reads_the_committed_cpu_evidence_results():
  path = os.path.join(REPO, "docs", "cpu_evidence", "results", "results.csv")
  table = gaps_cli.compare(path, "colored_sprites", path, "colored_sprites",
                           "deconv", ["mig"])
  row = table.iloc[0]
  assert (row["n_first"], row["n_first_baseline"]) == (6, 6)
  # findings.md: median MIG 0.020 -> 0.059, difference +0.039.
  assert row["gap_first"] == pytest.approx(0.039, abs=5e-4)
  assert row["difference"] == 0


# --- The report's sections ---------------------------------------------------

# The report's sections are private functions of evaluation/report.py.
# pylint: disable=protected-access


def _study(runs, figures=None, primary=("mig",)):
  return study_lib.Study(
      name="synthetic", description="", runs=runs, figures=figures or {},
      source="synthetic.toml", baseline="deconv", metrics=("mig",),
      primary_metrics=primary)


def _report(frame, tmp_path, runs=(), figures=None):
  study = _study(list(runs), figures)
  return report._Report(
      study, str(tmp_path), frame, False, layout.results_csv(str(tmp_path)),
      layout.versions_json(str(tmp_path)), [])


def test_sections_only_when_the_data_calls_for_them(tmp_path):
  one = _report(_two_datasets().query("dataset == 'small'"), tmp_path,
                figures={"heldout": ["small", "small_test"]})
  assert report._rate_distortion_by_beta(one) == []
  assert report._dataset_gaps(one) == []
  assert report._heldout(one) == []  # no heldout_errors.csv
  no_baseline = _report(_two_datasets().query("decoder != 'deconv'"),
                        tmp_path)
  assert report._dataset_gaps(no_baseline) == []
  assert not os.listdir(tmp_path)


def test_dataset_gaps_follow_the_study_order(tmp_path):
  frame = _two_datasets()
  runs = [_run(d, "deconv", 0) for d in ("small", "full")]
  lines = report._dataset_gaps(_report(frame, tmp_path, runs))
  text = "\n".join(lines)
  assert "`small` minus `full`:" in text and "+0.200 [" in text
  table = pd.read_csv(layout.dataset_gaps_csv(str(tmp_path)))
  assert table["difference"][0] == pytest.approx(0.2)


def test_dataset_gaps_without_metric_values_say_so(tmp_path):
  runs = [_run(d, "deconv", 0) for d in ("small", "full")]
  failed = _two_datasets().assign(value=float("nan"))
  lines = report._dataset_gaps(_report(failed, tmp_path, runs))
  assert ("No decoder besides `deconv` has values of mig on both datasets."
          in lines)
  # A study without primary metrics has no gap to speak of.
  study = dataclasses.replace(_study(runs), primary_metrics=())
  r = report._Report(study, str(tmp_path), _two_datasets(), False,
                     layout.results_csv(str(tmp_path)),
                     layout.versions_json(str(tmp_path)), [])
  assert report._dataset_gaps(r) == []
  assert "over all cells of the primary metrics (none)" in "\n".join(
      report._comparison(r))


def test_the_comparison_table_lists_datasets_in_the_study_order(tmp_path):
  # The study lists `small` first; by name `full` would be: the table
  # follows the study, as the gap section does.
  r = _report(_two_datasets(), tmp_path,
              [_run(d, "deconv", 0) for d in ("small", "full")])
  lines = "\n".join(report._comparison(r)).splitlines()
  shown = [l.split("|")[1].strip() for l in lines
           if l.startswith(("| small |", "| full |"))]
  assert list(dict.fromkeys(shown)) == ["small", "full"]
  saved = pd.read_csv(layout.comparison_prefix(str(tmp_path)) + ".csv")
  assert list(dict.fromkeys(saved["dataset"])) == ["small", "full"]
  assert "`small` minus `full`:" in "\n".join(report._dataset_gaps(r))


def test_figures_and_lists_follow_the_study_order_of_datasets():
  # As the comparison table: `small` (listed first by the study) before
  # `full`, in every figure's rows, the model figures and the note on cells
  # without values; without an order, by name.
  frame = _two_datasets()
  order = ["small", "full"]

  def rows(fig):
    return [ax.get_ylabel().split("\n")[0] for ax in fig.axes
            if ax.get_ylabel()]

  assert rows(figures.metric_distributions_figure(
      frame, "deconv", ["mig"], dataset_order=order)) == order
  assert rows(figures.metric_distributions_figure(
      frame, "deconv", ["mig"])) == ["full", "small"]
  titles = [ax.get_title() for ax in figures.rate_distortion_figure(
      frame, "deconv", order).axes]
  assert [t.split(" — ")[1].split(" / ")[0] for t in titles[::2]] == order
  shown = figure_runs.shown_runs(frame, "deconv", order)
  assert [dataset for (dataset, _), _ in shown] == order
  failed = frame.assign(value=float("nan"))
  note = report._cells_without_values(failed, [], order)
  assert note.index("small, vae") < note.index("full, vae")


def test_report_without_runs_has_the_three_endpoints(tmp_path):
  # Two datasets, a beta sweep and a held-out pair: all three sections.
  frame = pd.concat([_sweep(betas=(1.0, 2.0)), _two_datasets()],
                    ignore_index=True)
  folder = str(tmp_path)
  os.makedirs(layout.results_dir(folder))
  frame.to_csv(layout.results_csv(folder), index=False)
  _errors({"deconv": [5.0, 6.0, 7.0], "broadcast": [1.0, 2.0, 3.0]}).to_csv(
      layout.heldout_errors_csv(folder), index=False)
  runs = [_run(d, "deconv", 0) for d in ("ds", "small", "full")]
  study = _study(runs, figures={"heldout": ["ds", "ds_test"],
                                "traversals": False})
  path = report.build_report(study, folder)
  with open(path) as f:
    text = f.read()
  chapters = [l for l in text.splitlines() if l.startswith("## ")]
  assert chapters[-4:] == ["## Gap between datasets",
                           "## Rate-distortion across β", "## Figures",
                           "## Held-out region"]
  assert "`ds` minus `small`:" in text and "`ds` minus `full`:" in text
  assert "no β can be significant on its own" in text
  assert "Seeds per decoder and β: 3." in text
  assert "### Held-out gap per seed" in text
  assert "With 3 against 3 seeds the smallest possible p is 0.1." in text
  assert "### MIG across β" in text and "| 17 of 18 |" in text
  for csv in (layout.rate_distortion_csv(folder),
              layout.rate_distortion_pooled_csv(folder),
              layout.heldout_gaps_csv(folder),
              layout.dataset_gaps_csv(folder)):
    assert os.path.exists(csv)
  rd = pd.read_csv(layout.rate_distortion_csv(folder))
  assert set(rd["dataset"]) == {"ds"}  # one beta elsewhere: no curve


def test_gaps_rebuilt_from_heldout_errors_csv_equal_those_of_the_models(
    tmp_path):
  # Errors that pandas' default float parser reads a bit off (checked
  # below); the gaps and their interval must be those the models gave.
  errors = _errors({"deconv": [0, 0, 0], "broadcast": [0, 0, 0]})
  errors["error"] = np.random.RandomState(0).uniform(100, 1000, len(errors))
  errors.loc[0, "error"] = 967.2964844509263
  folder = str(tmp_path)
  os.makedirs(layout.results_dir(folder))
  errors.to_csv(layout.heldout_errors_csv(folder), index=False)
  assert (pd.read_csv(layout.heldout_errors_csv(folder))["error"] !=
          errors["error"]).any()
  r = _report(_two_datasets(), tmp_path,
              figures={"heldout": ["small", "small_test"]})
  assert "### Held-out gap per seed" in "\n".join(report._heldout(r))
  rebuilt = pd.read_csv(layout.heldout_gaps_csv(folder),
                        float_precision="round_trip")
  direct = endpoints.heldout_gap_table(endpoints.heldout_gaps(errors))
  for column in ("median", "diff_median", "ci_low", "ci_high"):
    assert rebuilt[column].tolist()[1:] == direct[column].tolist()[1:], column


def test_a_damaged_heldout_errors_csv_costs_the_section_not_the_report(
    tmp_path):
  folder = str(tmp_path)
  os.makedirs(layout.results_dir(folder))
  pd.DataFrame({"run_id": ["a"], "error": [1.0]}).to_csv(
      layout.heldout_errors_csv(folder), index=False)
  r = _report(_two_datasets(), tmp_path,
              figures={"heldout": ["small", "small_test"]})
  lines = report._heldout(r)
  assert lines[0] == "## Held-out region"
  assert "does not read as held-out errors" in lines[2]
  assert "lacks columns ['model', 'beta'" in lines[2]


# --- Two executions of one protocol (evaluation/compare_cli.py) ------------


def test_compare_cli_tests_two_tables_within_each_decoder(tmp_path, capsys):
  # A committed study against itself with broadcast's MIG shifted up.
  results = os.path.join(REPO, "docs", "cpu_evidence", "results",
                         "results.csv")
  shifted = pd.read_csv(results, float_precision="round_trip")
  moved = (shifted["decoder"] == "broadcast") & (shifted["metric"] == "mig")
  shifted.loc[moved, "value"] += 1.0
  second = tmp_path / "second.csv"
  shifted.to_csv(second, index=False)
  out_csv, figure = tmp_path / "cmp.csv", tmp_path / "cmp.png"
  assert compare_cli.main([
      results, str(second), "--dataset", "colored_sprites", "--labels",
      "TF 2.15", "TF 2.21", "--metric", "mig", "--metric", "dci",
      "--csv", str(out_csv), "--figure", str(figure)]) == 0
  table = pd.read_csv(out_csv).set_index(["model", "metric", "decoder"])
  moved_row = table.loc[("vae / broadcast", "mig", "TF 2.21")]
  assert moved_row["diff_median"] == pytest.approx(1.0)
  # 6 seeds each, every shifted seed above: the smallest exact p, Holm over
  # the 4 tests (2 decoders x 2 primary metrics).
  assert moved_row["p_value"] == pytest.approx(tables.min_exact_p(6, 6))
  assert moved_row["p_holm"] == pytest.approx(4 * tables.min_exact_p(6, 6))
  for cell in [("vae / deconv", "mig"), ("vae / broadcast", "dci"),
               ("vae / deconv", "dci")]:
    same = table.loc[cell + ("TF 2.21",)]
    assert same["diff_median"] == 0 and same["p_value"] == 1.0
  assert "| colored_sprites | vae / broadcast | 1 | mig | TF 2.21 |" in (
      capsys.readouterr().out)
  assert figure.stat().st_size > 0


def test_compare_cli_refuses_what_it_cannot_compare(tmp_path, capsys):
  results = os.path.join(REPO, "docs", "cpu_evidence", "results",
                         "results.csv")
  other = os.path.join(REPO, "docs", "claims", "factorvae", "results",
                       "results.csv")
  assert compare_cli.main([results, other, "--dataset",
                           "colored_sprites"]) == 2
  assert "share no model, decoder, beta and metric" in capsys.readouterr().err
  assert compare_cli.main([results, results, "--dataset", "colored_sprites",
                           "--labels", "a", "a"]) == 2
  assert "The two labels must differ" in capsys.readouterr().err
  assert compare_cli.main([results, results, "--dataset", "colored_sprites",
                           "--metric", "migg"]) == 2
  assert "Neither table has the metric(s) migg" in capsys.readouterr().err


# --- What the comparison section says about its own table ---------------------


def _five_against_five(failed=0):
  """MIG of 5 seeds per decoder on one dataset, `failed` deconv seeds lost."""
  cells = {("ds", 1.0, "deconv"): [(0.1 + 0.01 * s, 100.0, 10.0)
                                   for s in range(5 - failed)],
           ("ds", 1.0, "broadcast"): [(0.5 + 0.01 * s, 90.0, 9.0)
                                      for s in range(5)]}
  return _frame(cells)


def test_the_seed_sentence_counts_the_seeds_in_the_table_not_the_plan(
    tmp_path):
  runs = [_run("ds", d, s) for d in ("deconv", "broadcast") for s in range(5)]
  full = "\n".join(report._comparison(_report(_five_against_five(),
                                              tmp_path, runs)))
  assert ("With 5 seeds per decoder the smallest possible two-sided exact "
          "Mann-Whitney p-value is 2 / C(10, 5) = 0.0079" in full)
  assert ("Holm multiplies the smallest of the table's 1 primary test by 1, "
          "so p Holm < 0.05 is within reach in every cell." in full)
  # Two deconv runs failed: the cell compares 5 against 3 seeds, whatever
  # the plan says, and its smallest p is 2 / C(8, 5), not 2 / C(6, 3).
  lost = "\n".join(report._comparison(_report(_five_against_five(failed=2),
                                              tmp_path, runs)))
  assert ("With 5 against 3 seeds the smallest possible two-sided exact "
          "Mann-Whitney p-value is 2 / C(8, 5) = 0.036" in lost)
  assert "p Holm < 0.05 is within reach in every cell." in lost
  assert "| 0.036 | 0.036 (primary) |" in lost  # the table agrees


def test_the_seed_sentence_counts_holms_tests_not_untestable_cells(tmp_path):
  # A second dataset with one seed per decoder has no test yet: Holm's m is
  # 1 (the table's p Holm equals p), and the pending cell is said apart.
  cells = {("ds", 1.0, "deconv"): [(0.1 + 0.01 * s, 100.0, 10.0)
                                   for s in range(5)],
           ("ds", 1.0, "broadcast"): [(0.5 + 0.01 * s, 90.0, 9.0)
                                      for s in range(5)],
           ("one", 1.0, "deconv"): [(0.1, 100.0, 10.0)],
           ("one", 1.0, "broadcast"): [(0.5, 90.0, 9.0)]}
  text = "\n".join(report._comparison(_report(_frame(cells), tmp_path)))
  assert "smallest of the table's 1 primary test by 1" in text
  assert ("1 more primary cell has fewer than 2 seeds on a side: no test "
          "yet, not counted." in text)
  # Too few seeds for Holm to reach 0.05 is said as such.
  three = _frame({("ds", b, d): [(0.1 * (d == "broadcast") + 0.01 * s, 1.0,
                                  1.0) for s in range(3)]
                  for b in (1.0,) for d in ("deconv", "broadcast")})
  text = "\n".join(report._comparison(_report(three, tmp_path)))
  assert "so no p Holm can be below 0.05." in text


def test_a_baseline_without_values_is_named_as_the_reason_for_no_test(
    tmp_path):
  frame = _five_against_five()
  frame.loc[frame["decoder"] == "deconv", "value"] = float("nan")
  text = "\n".join(report._comparison(_report(frame, tmp_path)))
  assert ("No primary cell has a test: no values of `deconv` to compare "
          "with." in text)
  assert "2 seeds per decoder yet" not in text


def test_few_seeds_get_a_warning_about_the_interval(tmp_path):
  five = "\n".join(report._comparison(_report(_five_against_five(), tmp_path)))
  assert "not a usable confidence interval" not in five
  three = "\n".join(report._comparison(_report(
      _five_against_five(failed=2), tmp_path)))
  assert ("Here some cells compare as few as 3 seeds on a side: a bootstrap "
          "of so few values can take only a handful of medians, so the "
          "interval is not a usable confidence interval" in three)


def test_a_metric_without_values_is_not_listed_in_holms_family(tmp_path):
  study = study_lib.Study(
      name="synthetic", description="", runs=[], figures={},
      source="synthetic.toml", baseline="deconv",
      metrics=("mig", "factor_vae"), primary_metrics=("mig",))
  r = report._Report(study, str(tmp_path), _five_against_five(), False,
                     layout.results_csv(str(tmp_path)),
                     layout.versions_json(str(tmp_path)), [])
  text = "\n".join(report._comparison(r))
  assert "separately over those of the secondary ones (none)" in text
  assert ("No run has a value of factor_vae, so it is not in the table."
          in text)


def test_gaps_cli_names_an_unknown_metric(capsys):
  path = os.path.join(REPO, "docs", "cpu_evidence", "results", "results.csv")
  assert gaps_cli.main([path, "colored_sprites", path, "colored_sprites",
                        "--metric", "MIG"]) == 2
  err = capsys.readouterr().err
  assert "Neither file has the metric(s) MIG in these rows" in err
  assert "mig" in err


def test_compare_cli_matches_rows_whose_beta_is_unknown(tmp_path):
  frame = _five_against_five()
  frame["beta"] = float("nan")  # An external model's beta in a sweep.
  paths = [str(tmp_path / name) for name in ("a.csv", "b.csv")]
  for path in paths:
    frame.to_csv(path, index=False)
  table, _ = compare_cli.compare(paths[0], paths[1], "ds")
  assert len(table) == 4  # Two stacks x two decoders, one metric.


def test_the_heldout_section_reconstructs_only_trained_models(tmp_path,
                                                              monkeypatch):
  frame = _five_against_five()
  external = frame[frame["decoder"] == "broadcast"].assign(
      decoder="mymodel", run_id=lambda f: f["run_id"] + "-external")
  frame = pd.concat([frame, external], ignore_index=True)
  given = []

  def heldout_errors(runs, seen, unseen, bindings):
    given.append(set(runs["decoder"]))
    return pd.DataFrame()  # No finished runs: the section says so.

  monkeypatch.setattr(report.analysis, "heldout_errors", heldout_errors)
  study = study_lib.Study(
      name="synthetic", description="", runs=[], figures={
          "heldout": ["ds", "ds_test"]}, source="synthetic.toml",
      baseline="deconv", metrics=("mig",), primary_metrics=("mig",),
      external_names=("mymodel",))
  os.makedirs(layout.results_dir(str(tmp_path)))
  lines = report._heldout_section(study, frame, str(tmp_path))
  assert given == [{"deconv", "broadcast"}]
  assert "No finished runs on `ds`." in lines


def test_one_seed_is_said_to_allow_no_test(tmp_path):
  frame = _frame({("ds", 1.0, "deconv"): [(0.1, 100.0, 10.0)],
                  ("ds", 1.0, "broadcast"): [(0.2, 90.0, 9.0)]})
  text = "\n".join(report._comparison(_report(frame, tmp_path)))
  assert ("No primary cell has a test: fewer than 2 seeds on a side."
          in text)
  assert "1 seeds" not in text


def _wide(frame, **changed):
  """dlib's wide table of `frame`'s runs: two metric rows per run, every run
  trained alike except `changed` ({run_id: {binding: value}})."""
  rows = []
  for run_id, run in frame.drop_duplicates("run_id").set_index(
      "run_id").iterrows():
    config = {"model.name": "'%s'" % run_id, "model.random_seed": run["seed"],
              "model.training_steps": 3000, "vae.beta": run["beta"],
              "checkpoints.every_steps": 1000,
              "spatial_broadcast_decoder.num_channels": (
                  64 if run["decoder"] == "broadcast" else float("nan"))}
    config.update(changed.get(run_id, {}))
    for metric in ("mig", "dci"):
      rows.append({"train_config." + k: v for k, v in config.items()})
      rows[-1]["evaluation_config.evaluation.name"] = "'%s'" % metric
  return pd.DataFrame(rows)


def test_runs_of_one_comparison_trained_differently_are_named(tmp_path):
  frame = _five_against_five()
  odd = frame[(frame["decoder"] == "deconv") & (frame["seed"] == 3)]
  odd = odd["run_id"].iloc[0]
  # Checkpoint timing and the decoder's own bindings may differ; the same
  # wide table with only those differences is consistent.
  assert aggregate.settings_differences(frame, _wide(frame)) == []
  later = {run_id: {"checkpoints.every_steps": 500}
           for run_id in frame["run_id"]}
  assert aggregate.settings_differences(frame, _wide(frame, **later)) == []
  edited = _wide(frame, **{odd: {"model.training_steps": 6000}})
  found = aggregate.settings_differences(frame, edited)
  assert [(g, b) for g, b, _ in found] == [("ds, vae, β=1",
                                            "model.training_steps")]
  assert found[0][2]["6000"] == [odd]
  assert len(found[0][2]["3000"]) == 9
  # Within one decoder its own bindings must agree.
  broadcast = frame[frame["decoder"] == "broadcast"]["run_id"].iloc[0]
  narrow = _wide(frame, **{broadcast: {
      "spatial_broadcast_decoder.num_channels": 32}})
  (_, binding, values), = aggregate.settings_differences(frame, narrow)
  assert binding == "spatial_broadcast_decoder.num_channels"
  assert values["32"] == [broadcast]
  r = _report(frame, tmp_path)
  assert report._different_settings(r) == []
  r = dataclasses.replace(r, wide=edited)
  text = "\n".join(report._different_settings(r))
  assert text.startswith("## Warning: runs compared here were trained with "
                         "different settings")
  assert "- ds, vae, β=1, `model.training_steps`: 3000 in " in text
  assert "; 6000 in `%s`" % odd in text


def test_a_setting_the_study_binds_per_decoder_may_differ_between_decoders(
    tmp_path):
  path = tmp_path / "per_decoder.toml"
  path.write_text(study_toml(
      decoders=("deconv", "broadcast", "paper_broadcast"), seeds=range(5),
      metrics=("mig",),
      extra='[decoder_bindings]\nbroadcast = ["model.batch_size = 32"]\n'))
  study = study_lib.parse_study(str(path))
  per_decoder = aggregate.planned_per_decoder(study.runs)
  assert list(per_decoder) == ["model.batch_size"]
  assert {run.decoder: per_decoder["model.batch_size"][run.run_id]
          for run in study.runs} == {"deconv": "8", "broadcast": "32",
                                     "paper_broadcast": "8"}
  frame = pd.DataFrame([
      dict(run_id=run.run_id, dataset=run.dataset, model=run.model,
           decoder=run.decoder, seed=run.seed, beta=1.0, metric="mig",
           value=0.1) for run in study.runs])
  # As planned: [train] binds 8, broadcast's own binding 32.
  planned = {run.run_id: {"model.batch_size": (
      32 if run.decoder == "broadcast" else 8)} for run in study.runs}
  wide = _wide(frame, **planned)
  assert aggregate.settings_differences(frame, wide, per_decoder) == []
  r = dataclasses.replace(_report(frame, tmp_path, study.runs), wide=wide)
  assert report._different_settings(r) == []
  # Within one decoder it must still agree ...
  broadcast = [run.run_id for run in study.runs
               if run.decoder == "broadcast"]
  edited = dict(planned, **{broadcast[0]: {"model.batch_size": 16}})
  (_, binding, values), = aggregate.settings_differences(
      frame, _wide(frame, **edited), per_decoder)
  assert binding == "model.batch_size" and values["16"] == [broadcast[0]]
  # ... so must the decoders planned alike (an edit between sessions).
  edited = dict(planned, **{run.run_id: {"model.batch_size": 16}
                            for run in study.runs
                            if run.decoder == "paper_broadcast"})
  (_, binding, values), = aggregate.settings_differences(
      frame, _wide(frame, **edited), per_decoder)
  assert binding == "model.batch_size" and set(values) == {"8", "16"}
  # ... and every other binding between decoders.
  edited = dict(planned, **{broadcast[0]: {"model.batch_size": 32,
                                           "model.training_steps": 6000}})
  r = dataclasses.replace(r, wide=_wide(frame, **edited))
  text = "\n".join(report._different_settings(r))
  assert ("`model.training_steps`: 6000 in `%s`; 3000 in " % broadcast[0]
          in text)
  assert "`model.batch_size`" not in text


def test_a_decoder_without_values_in_a_row_is_named(tmp_path):
  frame = _five_against_five()
  frame.loc[frame["decoder"] == "broadcast", "value"] = float("nan")
  text = "\n".join(report._comparison(_report(frame, tmp_path)))
  assert ("These cells have runs but no value (the metric failed or was not "
          "computed for every seed), so the table has no row for them: ds, "
          "vae, β=1, mig: broadcast." in text)
  whole = "\n".join(report._comparison(_report(_five_against_five(),
                                               tmp_path)))
  assert "have runs but no value" not in whole


def test_one_single_seed_cell_does_not_speak_for_the_others(tmp_path):
  frame = pd.concat([_five_against_five(), _frame({
      ("other", 1.0, "deconv"): [(0.1, 100.0, 10.0)],
      ("other", 1.0, "broadcast"): [(0.2, 90.0, 9.0)]})], ignore_index=True)
  text = "\n".join(report._comparison(_report(frame, tmp_path)))
  assert "With 5 seeds per decoder the smallest possible" in text
  assert "1 seeds" not in text and "only 1 seed" not in text
