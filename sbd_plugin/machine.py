"""What a result was computed on: CPU, SIMD level, oneDNN, determinism.

Numbers differ in the last bits across CPU types (TensorFlow's oneDNN kernels
and numpy's SIMD dispatch differ), so every run records these next to its
library versions, and every benchmark prints them.
"""
import os
import platform

from sbd_plugin import portable

# x86 and ARM feature flags, widest first: the SIMD level kernels can use.
_SIMD_LEVELS = (("amx_tile", "AMX"), ("avx512_vnni", "AVX-512 VNNI"),
                ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
                ("sse4_2", "SSE4.2"), ("sve", "SVE"), ("asimd", "NEON"))


def read_proc(path, key):
  """Returns the value of the first `key: value` line of a /proc file, or None.

  Args:
    path: File, e.g. "/proc/cpuinfo".
    key: Start of the line, e.g. "model name" or "VmRSS:".

  Returns:
    The text after the first colon, stripped; None if there is no such line
    or the file cannot be read (not Linux).
  """
  try:
    with open(path) as f:
      for line in f:
        if line.startswith(key):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return None


def cpu_model():
  """The CPU's model name (e.g. "AMD EPYC 7B13")."""
  return read_proc("/proc/cpuinfo", "model name") or platform.processor()


def cpu_flags():
  """Returns the CPU's feature flags (avx2, fma, ...) as a list, or []."""
  # x86 names the line "flags", ARM "Features".
  text = (read_proc("/proc/cpuinfo", "flags") or
          read_proc("/proc/cpuinfo", "Features"))
  return text.split() if text else []


def simd_level(flags=None):
  """The widest SIMD extension of the CPU ("AVX-512", "AVX2", ...)."""
  flags = set(cpu_flags() if flags is None else flags)
  for flag, name in _SIMD_LEVELS:
    if flag in flags:
      return name
  return "unknown"


def onednn_enabled():
  """Returns whether TensorFlow's oneDNN optimisations are on, or None."""
  try:
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    return None


def run_record():
  """What to record with a result besides library versions.

  Returns:
    Dict with the CPU model, its SIMD level, the number of usable cores and
    of TensorFlow's intra-op threads (its default: one per core), whether
    oneDNN was on, whether training ran with TensorFlow's op
    determinism (the plugin's default) and seeded generators, and portable
    mode (`sbd_plugin.portable.record`).
  """
  from sbd_plugin.dlib_bridge import reproducibility  # pylint: disable=g-import-not-at-top
  return {
      "cpu": cpu_model(),
      "simd": simd_level(),
      "cores": len(os.sched_getaffinity(0)),
      # Sums are split by thread: the last bits depend on this count.
      "intra_op_threads": int(os.environ.get("TF_NUM_INTRAOP_THREADS") or
                              len(os.sched_getaffinity(0))),
      "onednn": onednn_enabled(),
      "deterministic": reproducibility.deterministic_ops_requested(),
      # Portable mode (sbd_plugin.portable): on, and the pinned variables.
      portable.KEY: portable.record(),
  }
