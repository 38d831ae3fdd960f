"""What the benchmarks share: datasets, sessions, timing and the gin configs.

TensorFlow, gin and dlib are imported inside the functions, so that the
command line answers --help and rejects bad flags without loading them.
"""
import contextlib
import os
import time

DECODERS = {
    # Name printed -> plugin model config selecting the decoder.
    "deconv_decoder": "deconv_vae.gin",
    "spatial_broadcast_decoder": "broadcast_vae.gin",
}


def dataset(name):
  """Returns dlib's ground-truth data set `name` (plugin names included)."""
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top
  return named_data.get_named_ground_truth_data(name)


def session_config(device):
  """Returns a tf.ConfigProto hiding the GPUs ("cpu") or growing into one."""
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  if device == "cpu":
    return tf.ConfigProto(device_count={"GPU": 0})
  config = tf.ConfigProto()
  config.gpu_options.allow_growth = True
  return config


def time_op(sess, op, min_seconds, min_runs):
  """Runs `op` until min_seconds and min_runs are reached; returns runs/s."""
  runs, start = 0, time.perf_counter()
  while True:
    sess.run(op)
    runs += 1
    elapsed = time.perf_counter() - start
    if runs >= min_runs and elapsed >= min_seconds:
      return runs / elapsed


def best_rates(sessions, repeats, min_seconds, min_runs):
  """Best runs/s of each variant, measured round-robin; closes the sessions.

  Round-robin, so that a change of the machine's load hits all variants
  alike.

  Args:
    sessions: Dict from variant name to (tf.Session, op), warmed up.
    repeats: Measurements per variant (at least one); the best is kept.
    min_seconds: Minimum seconds per measurement.
    min_runs: Minimum runs of the op per measurement.

  Returns:
    Dict from variant name to runs/s.
  """
  best = {kind: 0.0 for kind in sessions}
  for _ in range(max(1, repeats)):
    for kind, (sess, op) in sessions.items():
      best[kind] = max(best[kind], time_op(sess, op, min_seconds, min_runs))
  for sess, _ in sessions.values():
    sess.close()
  return best


def gin_config_path(*parts):
  """Path of a file under gin_configs/; lets gin resolve its includes.

  Args:
    *parts: Path components below gin_configs/, e.g. ("metrics", "mig.gin").

  Returns:
    Absolute path of the file.
  """
  import gin  # pylint: disable=g-import-not-at-top
  import gin_configs  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(gin_configs.__file__)))
  # The configs include each other as 'gin_configs/...', relative to root.
  gin.add_config_file_search_path(root)
  return os.path.join(root, "gin_configs", *parts)


@contextlib.contextmanager
def parsed_gin(config_files, bindings):
  """Parses gin files and bindings for the block; clears the config after.

  The modules registering the configurables the files name must be imported
  before: gin rejects a name it does not know yet.

  Args:
    config_files: List of gin file paths.
    bindings: List of gin binding strings, applied after the files.

  Yields:
    None.
  """
  import gin  # pylint: disable=g-import-not-at-top
  gin.parse_config_files_and_bindings(config_files, bindings)
  try:
    yield
  finally:
    gin.clear_config()
