"""What the benchmarks ran on: CPU, its flags, RAM, TensorFlow, oneDNN, GPUs."""
import os
import platform

from sbd_plugin.machine import cpu_flags
from sbd_plugin.machine import cpu_model
from sbd_plugin.machine import onednn_enabled
from sbd_plugin.machine import read_proc
from sbd_plugin.machine import simd_level


def machine_info():
  """Returns a dict describing the machine and the software stack."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  mem_kb = read_proc("/proc/meminfo", "MemTotal")
  gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
  return {
      "nproc": len(os.sched_getaffinity(0)),
      "cpu": cpu_model(),
      "cpu_flags": cpu_flags(),
      "simd": simd_level(),
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
      "- CPU: %s, nproc %d, RAM %.1f GiB, SIMD %s" % (
          info["cpu"], info["nproc"], info["ram_gib"] or 0, info["simd"]),
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
