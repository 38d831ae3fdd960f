"""What the benchmarks ran on: CPU, its flags, RAM, TensorFlow, oneDNN, GPUs."""
import os
import platform


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


def cpu_flags():
  """Returns the CPU's feature flags (avx2, fma, ...) as a list, or []."""
  # x86 names the line "flags", ARM "Features".
  text = (read_proc("/proc/cpuinfo", "flags") or
          read_proc("/proc/cpuinfo", "Features"))
  return text.split() if text else []


def onednn_enabled():
  """Returns whether TensorFlow's oneDNN optimisations are on, or None."""
  try:
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    return None


def machine_info():
  """Returns a dict describing the machine and the software stack."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  mem_kb = read_proc("/proc/meminfo", "MemTotal")
  gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
  return {
      "nproc": len(os.sched_getaffinity(0)),
      "cpu": read_proc("/proc/cpuinfo", "model name") or platform.processor(),
      "cpu_flags": cpu_flags(),
      "ram_gib": (float(mem_kb.split()[0]) / 2**20) if mem_kb else None,
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
      "onednn": onednn_enabled(),
      "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
      "gpus": gpus,
  }


def machine_lines(info, load_start, command):
  """Lines of the report's Machine section.

  Args:
    info: Dict from machine_info().
    load_start: The (1, 5, 15 min) load average when the run started.
    command: The command line, as printed.

  Returns:
    List of strings.
  """
  return [
      "- command: `%s`" % command,
      "- CPU: %s, nproc %d, RAM %.1f GiB" % (info["cpu"], info["nproc"],
                                             info["ram_gib"] or 0),
      # The flags say which SIMD kernels (AVX2, AVX-512, AMX) TF can use.
      "- CPU flags: %s" % (" ".join(info["cpu_flags"]) or "unknown"),
      "- Python %s, TensorFlow %s, oneDNN %s (TF_ENABLE_ONEDNN_OPTS=%s)" % (
          info["python"], info["tensorflow"],
          {True: "on", False: "off", None: "unknown"}[info["onednn"]],
          info["TF_ENABLE_ONEDNN_OPTS"]),
      "- GPUs seen by TensorFlow: %s" % (", ".join(info["gpus"]) or "none"),
      "- load average at start: %.2f %.2f %.2f" % load_start,
  ]


def gpu_names():
  """Returns the device names of the GPUs TensorFlow sees (may be empty)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  names = []
  for device in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(device)
    names.append(details.get("device_name", device.name))
  return names
