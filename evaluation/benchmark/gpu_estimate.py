"""GPU time of the paper studies from FLOPs, measured overheads and assumptions.

Usage:
  python -m evaluation.benchmark.gpu_estimate [--tflops 20.1] [--launch-us 5]
      [--floor-us 2] [--host-scale 1.0] [--host-ms A,B,C,D] [--per-gpu 4]
      [--gpus 8]

Pure arithmetic (no TensorFlow of its own); docs/gpu_time.md explains every number. Per training
step (one sess.run) of a config c, in ms:

  compute  = GFLOP_c / TFLOP/s                      (FLOPs: flops.py, x3, x16)
  busy     = compute + executed_ops_c x floor_us    (GPU occupied by it)
  dispatch = executed_ops_c x launch_us             (host launches, overlaps)
  alone    = host_ms_c x host_scale + max(dispatch, busy)

host_ms_c and executed_ops_c were measured on CPU by
evaluation.benchmark.trainer_overhead. k runs sharing a GPU: each steps at
its `alone` speed while the GPU can serve them (sum of busy/alone <= 1), else
all slow down by that sum (kernels of different processes do not overlap
without MPS). Runs are placed in the runner's order (dataset x model x
decoder x seed), each on the lowest-numbered GPU with a free slot
(SLURM's 4-run jobs and Ray's fractional GPUs pack that way).
"""
import argparse

# Main-thread CPU ms per step of the study runner's trainer, and nodes the
# executor runs per step (trainer_overhead, 2026-11-26, tiny graphs).
HOST_MS = {"broadcast_vae": 1.45, "deconv_vae": 1.52,
           "broadcast_factorvae": 2.97, "deconv_factorvae": 2.71}
EXECUTED_OPS = {"broadcast_vae": 272, "deconv_vae": 326,
                "broadcast_factorvae": 644, "deconv_factorvae": 699}
# 3 x forward x 16 images, encoder + decoder (tf.profiler); FactorVAE adds
# ~1 GFLOP of discriminator.
GFLOP = {"broadcast_vae": 34.3, "deconv_vae": 4.96,
         "broadcast_factorvae": 35.3, "deconv_factorvae": 5.96}
# sess.run calls (batches) of a paper run: 1.5M for every model. FactorVAE's
# global step counts 2 per batch (two optimizers), so the paper studies bind
# `model.training_steps = 3000000` for it (`model_bindings`).
BATCHES = {"broadcast_vae": 1.5e6, "deconv_vae": 1.5e6,
           "broadcast_factorvae": 1.5e6, "deconv_factorvae": 1.5e6}
# Runs per (model, decoder) of each study, in the runner's order.
STUDIES = {
    "paper_mig": [("vae", 10), ("factorvae", 10)],
    "paper_small_objects": [("vae", 10), ("factorvae", 10)],
    "paper_heldout": [("vae", 10)],
    "paper_rate_distortion": [("vae", 100)],  # beta-VAE: a VAE's step.
}


def step_times(tflops, launch_us, floor_us, host_scale, host_ms=None):
  """Dict config -> dict(compute, busy, dispatch, alone) in ms.

  host_ms: dict config -> host ms per step replacing HOST_MS (None: HOST_MS).
  """
  host_ms = HOST_MS if host_ms is None else host_ms
  out = {}
  for c in GFLOP:
    compute = GFLOP[c] / tflops
    busy = compute + EXECUTED_OPS[c] * floor_us / 1e3
    dispatch = EXECUTED_OPS[c] * launch_us / 1e3
    out[c] = {"compute": compute, "busy": busy, "dispatch": dispatch,
              "alone": host_ms[c] * host_scale + max(dispatch, busy)}
  return out


def study_runs(study):
  runs = []
  for model, count in STUDIES[study]:
    for decoder in ("broadcast", "deconv"):
      runs += ["%s_%s" % (decoder, model)] * count
  return runs


def makespan_hours(runs, gpus, per_gpu, times):
  """Wall hours of training `runs` on `gpus` GPUs with `per_gpu` slots."""
  pending, active, now = list(runs), [], 0.0

  def fill():
    while pending:
      counts = [sum(1 for a in active if a[0] == g) for g in range(gpus)]
      free = [g for g in range(gpus) if counts[g] < per_gpu]
      if not free:
        return
      config = pending.pop(0)
      active.append([free[0], config, BATCHES[config]])

  fill()
  while active:
    rates = []
    for gpu, config, _ in active:
      load = sum(times[c]["busy"] / times[c]["alone"]
                 for g, c, _ in active if g == gpu)
      rates.append(1.0 / (times[config]["alone"] * max(1.0, load)))
    dt = min(a[2] / r for a, r in zip(active, rates))
    for a, r in zip(active, rates):
      a[2] -= r * dt
    now += dt
    active = [a for a in active if a[2] > 1e-6]
    fill()
  return now / 3.6e6


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--tflops", type=float, default=20.1,
                      help="achieved TFLOP/s (default: 30%% of an H100 "
                      "SXM's 66.9 FP32 peak)")
  parser.add_argument("--launch-us", type=float, default=5.0)
  parser.add_argument("--floor-us", type=float, default=2.0)
  parser.add_argument("--host-scale", type=float, default=1.0)
  parser.add_argument("--host-ms", default=None,
                      help="host ms per step of the four configs, comma-"
                      "separated in the order %s (default: HOST_MS, the "
                      "2026-11-26 measurement)" % ",".join(HOST_MS))
  parser.add_argument("--per-gpu", type=int, default=4)
  parser.add_argument("--gpus", type=int, default=8)
  args = parser.parse_args(argv)
  host_ms = None
  if args.host_ms:
    values = [float(v) for v in args.host_ms.split(",")]
    if len(values) != len(HOST_MS):
      parser.error("--host-ms needs %d values (%s)" % (len(HOST_MS),
                                                      ",".join(HOST_MS)))
    host_ms = dict(zip(HOST_MS, values))
  times = step_times(args.tflops, args.launch_us, args.floor_us,
                     args.host_scale, host_ms)
  print("| config | compute ms | GPU busy ms | dispatch ms | step alone ms |"
        " GPU busy share | batches | hours alone |")
  print("|---|---|---|---|---|---|---|---|")
  for c, t in times.items():
    print("| %s | %.2f | %.2f | %.2f | %.2f | %.0f%% | %s | %.2f |" % (
        c, t["compute"], t["busy"], t["dispatch"], t["alone"],
        100 * t["busy"] / t["alone"], "{:,}".format(int(BATCHES[c])),
        t["alone"] * BATCHES[c] / 3.6e6))
  print()
  print("| study | runs | 1 GPU, 1 run at a time (h) | 1 GPU, %d sharing (h) |"
        " %d GPUs, 1 run each (h) | %d GPUs, %d each (h) | GPU-h booked |"
        % (args.per_gpu, args.gpus, args.gpus, args.per_gpu))
  print("|---|---|---|---|---|---|---|")
  for study in STUDIES:
    runs = study_runs(study)
    node = makespan_hours(runs, args.gpus, args.per_gpu, times)
    print("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.0f |" % (
        study, len(runs), makespan_hours(runs, 1, 1, times),
        makespan_hours(runs, 1, args.per_gpu, times),
        makespan_hours(runs, args.gpus, 1, times), node, args.gpus * node))


if __name__ == "__main__":
  main()
