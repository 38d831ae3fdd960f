"""dlib's own evaluation step, run on a representation function instead of a TF-Hub module.

dlib's `evaluation/evaluate.py::evaluate` (what `dlib_evaluate` runs) reads
the representation only through `hub.eval_function_for_module(<model>/tfhub)`
and then calls the metric with `_representation_function`. Everything else it
does (the metric's gin configurable, `np.random.RandomState(random_seed)`,
the artifact folder, the result files of `utils/results.py`) is what a study's
numbers are made of. So an external model (ONNX, a PyTorch or JAX function)
is scored by running that same `evaluate` with the module's loader answered
by the function: same random stream, same batches, same result layout.

The swap lasts for one call and is undone after it, so `dlib_evaluate` and the
study runner in the same process keep reading TF-Hub modules.
"""
import contextlib
import threading

import gin

# dlib's signature and output key of a postprocessed module
# (postprocessing/postprocess.py saves it; evaluation/evaluate.py reads it).
_SIGNATURE = "representation"
_OUTPUT_KEY = "default"
_SWAP_LOCK = threading.Lock()


class _FunctionHub(object):
  """Stands in for the `tensorflow_hub` module inside dlib's evaluate.py.

  Answers `eval_function_for_module` with the representation function; any
  other attribute is the real `tensorflow_hub`'s.
  """

  def __init__(self, real_hub, representation_fn):
    self._real_hub = real_hub
    self._representation_fn = representation_fn

  def __getattr__(self, name):
    return getattr(self._real_hub, name)

  @contextlib.contextmanager
  def eval_function_for_module(self, module_path, tags=None):
    del module_path, tags  # The function is the module.
    representation_fn = self._representation_fn

    def module_function(inputs, signature=None, as_dict=None):
      if signature != _SIGNATURE or not as_dict:
        raise RuntimeError(
            "dlib's evaluate.py asked the module for signature %r (as_dict="
            "%r); sbd_plugin serves only %r: dlib 1.5's evaluate.py is "
            "expected." % (signature, as_dict, _SIGNATURE))
      return {_OUTPUT_KEY: representation_fn(inputs["images"])}

    yield module_function


def evaluate_representation(representation_fn, model_dir, output_dir,
                            gin_config_files, gin_bindings):
  """Runs dlib's `evaluate_with_gin` with `representation_fn` as the model.

  Args:
    representation_fn: Function from a numpy batch of observations
      [batch, height, width, channels] float32 to a numpy array
      [batch, dims]: what dlib's metrics call `representation_function`.
    model_dir: Folder standing for the model: dlib copies its `results/`
      into the metric's results (the model's record) and gives metrics
      `<model_dir>/artifacts/<evaluation.name>` for artifacts.
    output_dir: The metric's folder, as `dlib_evaluate --output_dir`
      (must not exist: dlib refuses to overwrite).
    gin_config_files: The metric's gin configs.
    gin_bindings: Further bindings (dataset, seed, metric settings), applied
      after the configs.
  """
  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation import evaluate as dlib_evaluate
  # pylint: enable=g-import-not-at-top
  with _SWAP_LOCK:
    real_hub = dlib_evaluate.hub
    dlib_evaluate.hub = _FunctionHub(real_hub, representation_fn)
    try:
      dlib_evaluate.evaluate_with_gin(model_dir, output_dir, False,
                                      list(gin_config_files),
                                      list(gin_bindings))
    finally:
      dlib_evaluate.hub = real_hub
      # evaluate_with_gin clears the config only when the metric succeeds.
      gin.clear_config()

