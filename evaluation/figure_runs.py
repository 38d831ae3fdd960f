"""Which trained runs the report's model figures draw: the median-MIG seeds.

The paper shows, per decoder, the traversals of the seed of median MIG
(Figs. 2-3: "Stars are median MIG values and the seeds used for the
traversals"). `shown_runs` picks per dataset and model one beta and, per
decoder, the run of median MIG among that decoder's seeds there; the rank
arithmetic is the pure `median_position`. Without MIG values it falls back to
the lowest seed and says why.
"""
import collections

import numpy as np
import pandas as pd

from evaluation import tables

# The metric the paper ranks seeds by: its row in the results table.
SELECTION_METRIC = "mig"

# run: a row of the results frame (run_id, decoder, seed, beta, model_dir,
# ...); mig: its MIG (None in a fallback); rank: its 1-based place among the
# decoder's runs at that beta ordered by MIG; count: how many runs were
# ranked; fallback: None, or why the run was taken by seed instead.
ShownRun = collections.namedtuple("ShownRun", ["run", "mig", "rank", "count",
                                               "fallback"])


def median_position(values, seeds):
  """Index of the median run: the lower median, ties by lower seed.

  Runs are ordered by value and, for equal values, by seed; the median is
  the ((n - 1) // 2 + 1)-th of the n: the middle one for odd n and the
  lower of the two middle ones for even n (the paper does not say which it
  takes; the lower one is a run, where the mean of the two is not).

  Args:
    values: 1-D array [n] of the runs' metric values (no NaN).
    seeds: 1-D array [n] of their seeds (distinct).

  Returns:
    (index into values, rank): the median run's position in the input and
    its 1-based rank in the order.
  """
  order = np.lexsort((np.asarray(seeds), np.asarray(values, float)))
  rank = (len(order) - 1) // 2
  return int(order[rank]), rank + 1


def _pick(runs, mig):
  """The median-MIG run of one decoder's runs at one beta, as a ShownRun.

  Args:
    runs: DataFrame, one row per run (sorted by seed).
    mig: Series run_id -> MIG of the study's runs with a MIG value.

  Returns:
    ShownRun.
  """
  ranked = runs[runs["run_id"].isin(mig.index)]
  if ranked.empty:
    first = next(runs.itertuples())
    return ShownRun(first, None, None, None,
                    "MIG is not among the study's metrics" if mig.empty else
                    "no run of this decoder here has a MIG value")
  values = mig.loc[ranked["run_id"]].to_numpy(float)
  index, rank = median_position(values, ranked["seed"].to_numpy())
  return ShownRun(list(ranked.itertuples())[index], float(values[index]),
                  rank, len(ranked), None)


def _common_beta(group):
  """The beta with runs of the most decoders, the lowest first (NaN last)."""
  counts = group.groupby("beta", dropna=False, sort=True)["decoder"].nunique()
  return counts.idxmax()  # sorted: the first of the largest counts


def shown_runs(frame, baseline, dataset_order=None):
  """The run each decoder's model figures draw, per dataset and model.

  All decoders of a dataset and model show the same beta where they can:
  the one at which most decoders have runs, the lowest first; a decoder
  without runs there shows its lowest beta. Within that beta each decoder
  shows its run of median MIG (`median_position`); without MIG values, its
  lowest seed (ShownRun.fallback says why).

  Args:
    frame: Tidy results DataFrame (run_id, dataset, model, decoder, seed,
      beta, metric, value, model_dir, ...).
    baseline: The study's baseline decoder, listed first.
    dataset_order: Order of the datasets, e.g. the study's; others follow
      by name. Default: by name.

  Returns:
    List of ((dataset, model), [ShownRun, ...]) in decoder order, by
    dataset (`dataset_order`), then model.
  """
  rows = frame[frame["metric"] == SELECTION_METRIC].dropna(subset=["value"])
  mig = rows.drop_duplicates("run_id").set_index("run_id")["value"]
  runs = frame.drop_duplicates("run_id").sort_values(
      ["beta", "seed"], na_position="last", kind="stable")
  shown = []
  for key, group in runs.groupby(["dataset", "model"], sort=True):
    beta = _common_beta(group)
    chosen = {}
    for decoder, own in group.groupby("decoder", sort=False):
      same = own["beta"].isna() if pd.isna(beta) else own["beta"] == beta
      if not same.any():  # its lowest beta (the runs are sorted by beta)
        first = own["beta"].iloc[0]
        same = (own["beta"].isna() if pd.isna(first) else
                own["beta"] == first)
      chosen[decoder] = _pick(own[same], mig)
    shown.append((key, [chosen[d] for d in
                        tables.decoder_order(list(chosen), baseline)]))
  rank = tables.dataset_rank(dataset_order)
  shown.sort(key=lambda item: rank(item[0][0]))  # stable: models kept
  return shown
