"""An ONNX encoder as a representation function, run by ONNX Runtime.

`OnnxModel(path, observation_shape)` opens the file with
`onnxruntime.InferenceSession`, checks the model's declared input and output
against the dataset once (rank, size and channels in the chosen layout,
float types, a [batch, dims] output), and is then a function from numpy
batches NHWC float32 to the model's first output. Inputs are transposed to
NCHW for models exported from PyTorch (`input_layout="nchw"`).
"""
import os

import numpy as np

LAYOUTS = ("nhwc", "nchw")
_FLOAT_TYPES = ("tensor(float)", "tensor(double)", "tensor(float16)")
# GPU providers are used where ONNX Runtime has them; the CPU always works.
_PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "ROCMExecutionProvider",
                        "CPUExecutionProvider")


class ModelError(ValueError):
  """The model file cannot be scored on this dataset; says why."""


def _providers():
  import onnxruntime  # pylint: disable=g-import-not-at-top
  available = set(onnxruntime.get_available_providers())
  return [p for p in _PREFERRED_PROVIDERS if p in available]


def _shape_text(shape):
  return "[%s]" % ", ".join(str(d) if isinstance(d, int) else
                            repr(d or "?") for d in shape)


def expected_input_shape(observation_shape, layout):
  """The model input [batch, ...] a dataset's observations give in `layout`."""
  height, width, channels = observation_shape
  if layout == "nhwc":
    return ["batch", height, width, channels]
  return ["batch", channels, height, width]


def _matches(declared, expected):
  """Whether a declared shape fits: symbolic or unknown dimensions fit all."""
  return len(declared) == len(expected) and all(
      not isinstance(d, int) or not isinstance(e, int) or d == e
      for d, e in zip(declared, expected))


def check_input(name, declared, dtype, observation_shape, layout):
  """Checks a model's declared input against the dataset's observations.

  Args:
    name: The model's name, for messages.
    declared: The input's declared shape (ints, or strings/None for dynamic
      dimensions), as onnxruntime reports it.
    dtype: Its declared type, e.g. "tensor(float)".
    observation_shape: The dataset's [height, width, channels].
    layout: "nhwc" or "nchw".

  Raises:
    ModelError: naming both shapes and the --input-layout hint.
  """
  expected = expected_input_shape(observation_shape, layout)
  if dtype not in _FLOAT_TYPES:
    raise ModelError("Model %s takes %s; the dataset's observations are "
                     "float32 images in [0, 1]: export the model with a float "
                     "input." % (name, dtype))
  if _matches(declared, expected):
    return
  other = LAYOUTS[1 - LAYOUTS.index(layout)]
  hint = ""
  if _matches(declared, expected_input_shape(observation_shape, other)):
    hint = " It matches --input-layout %s: pass that." % other
  elif len(declared) == 4:
    hint = (" Check the image size and channels the model was trained on%s." %
            ("; --input-layout nchw is for models exported from PyTorch"
             if layout == "nhwc" else ""))
  else:
    hint = " The model must take a batch of images, rank 4."
  raise ModelError(
      "Model %s takes input %s; the dataset's observations (shape %s, %s) "
      "give %s in layout %s.%s" % (
          name, _shape_text(declared), list(observation_shape), "HWC",
          _shape_text(expected), layout, hint))


def check_declared_output(name, declared, dtype):
  """Checks a model's first declared output: [batch, dims] floats, dims >= 1.

  Raises:
    ModelError: if the declared rank, type or dims rule it out (dynamic
      dimensions are checked on the first batch instead).
  """
  if dtype not in _FLOAT_TYPES:
    raise ModelError("Model %s outputs %s; expected floats [batch, dims] (the "
                     "mean of the representation)." % (name, dtype))
  if declared is not None and len(declared) != 2:
    raise ModelError(
        "Model %s outputs shape %s; expected [batch, dims]: one vector (the "
        "mean of the representation) per image." % (name,
                                                     _shape_text(declared)))
  if declared is not None and declared[1] == 0:
    raise ModelError("Model %s outputs [batch, 0]: a representation needs at "
                     "least one dimension." % name)


class OnnxModel(object):
  """An ONNX encoder checked against a dataset; call it on NHWC batches.

  Attributes:
    path: The model file.
    name: Its name in messages and records.
    layout: "nhwc" or "nchw", the model's input layout.
    fixed_batch: The model's fixed batch size, or None if it is dynamic.
    providers: The ONNX Runtime execution providers in use.
  """

  def __init__(self, path, observation_shape, layout="nhwc", name=None):
    import onnxruntime  # pylint: disable=g-import-not-at-top
    self.path = path
    self.name = name or os.path.basename(path)
    if layout not in LAYOUTS:
      raise ModelError("input_layout must be one of %s, got %r." % (
          ", ".join(LAYOUTS), layout))
    self.layout = layout
    if not os.path.isfile(path):
      raise ModelError("Model file %s does not exist." % path)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # Errors only.
    try:
      self._session = onnxruntime.InferenceSession(
          path, options, providers=_providers())
    except Exception as e:  # pylint: disable=broad-except
      raise ModelError("Model %s is not an ONNX model ONNX Runtime can load "
                       "(%s): %s" % (self.name, path, str(e).strip()[:500]))
    self.providers = self._session.get_providers()
    inputs = self._session.get_inputs()
    if len(inputs) != 1:
      raise ModelError("Model %s has %d inputs (%s); expected one, the images." %
                       (self.name, len(inputs),
                        ", ".join(i.name for i in inputs)))
    self._input = inputs[0]
    check_input(self.name, list(self._input.shape), self._input.type,
                observation_shape, layout)
    batch = self._input.shape[0]
    self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
    self._input_dtype = {"tensor(float)": np.float32,
                         "tensor(double)": np.float64,
                         "tensor(float16)": np.float16}[self._input.type]
    output = self._session.get_outputs()[0]
    declared = list(output.shape) if output.shape is not None else None
    check_declared_output(self.name, declared, output.type)
    self._output_name = output.name

  def __call__(self, observations):
    """The first output for a batch [N, H, W, C] of float32 observations."""
    batch = np.asarray(observations, self._input_dtype)
    if self.layout == "nchw":
      batch = np.ascontiguousarray(np.transpose(batch, (0, 3, 1, 2)))
    if self.fixed_batch is None:
      return self._run(batch)
    # A model exported with a fixed batch runs that many images at a time;
    # the last chunk is padded with zeros and the padding dropped.
    outputs = []
    for start in range(0, len(batch), self.fixed_batch):
      chunk = batch[start:start + self.fixed_batch]
      pad = self.fixed_batch - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:],
                                                chunk.dtype)])
      outputs.append(self._run(chunk)[:len(chunk) - pad])
    return np.concatenate(outputs)

  def _run(self, batch):
    return self._session.run([self._output_name],
                             {self._input.name: batch})[0]
