"""Packaging for sbd_plugin: Spatial Broadcast decoders and datasets for dlib.

The dependency pins below are the stack that dlib's numbers are produced with;
`sbd_plugin.versions` records them next to every result. disentanglement-lib
itself is installed separately with `--no-deps` (see scripts/bootstrap.sh)
because its metadata pins TensorFlow 1.14 and tensorflow-probability 0.7,
which do not exist for Python 3.11.
"""
import os
import runpy

import setuptools
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

_PTH = "sbd_plugin.pth"

# What dlib's numbers depend on: exact pins, kept in one place.
_PINS = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "sbd_plugin", "versions.py"))
NUMERIC_PINS = ["%s==%s" % kv for kv in _PINS["NUMERIC_PINS"].items()]
# dlib's other (unpinned upstream) runtime needs, plus ours.
RUNTIME = [
    "absl-py>=1.0",
    "pandas>=2.0,<2.3",
    "matplotlib>=3.7,<3.10",
    "pillow>=9.0",
    "imageio>=2.20,<2.37",
    "simplejson>=3.17",
    "six>=1.16",
    "future>=0.18",
    "seaborn>=0.12,<0.14",
    "h5py>=3.8,<3.13",
    "tqdm>=4.60",
    "setuptools<81",  # tensorflow-hub 0.15 imports pkg_resources.
    # sbd_score / sbd_plugin.score: external models (ONNX files).
    "onnxruntime>=1.17,<2",
]


class BuildPyWithHook(build_py):
  """Ships the activation `.pth` file at the top of site-packages."""

  def run(self):
    super().run()
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), _PTH)
    self.copy_file(src, os.path.join(self.build_lib, _PTH))

  def get_outputs(self, include_bytecode=True):
    return super().get_outputs(include_bytecode) + [
        os.path.join(self.build_lib, _PTH)]


class EditableWheelWithHook(editable_wheel):
  """Ships the same `.pth` file with `pip install -e .` (development mode)."""

  def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):
    outputs = super()._run_build_commands(dist_name, unpacked_wheel, build_lib,
                                          tmp_dir)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), _PTH)
    self.copy_file(src, os.path.join(str(unpacked_wheel), _PTH))
    return outputs


setuptools.setup(
    name="sbd_plugin",
    version="0.1.0",
    description=("Spatial Broadcast decoders, the paper's datasets and a "
                 "comparison study runner for disentanglement_lib 1.5 on "
                 "Python 3.11 / TensorFlow 2.15."),
    # tomllib (the study files) is 3.11's; 3.12 and 3.13 get the TF 2.21
    # stack (versions.STACKS).
    python_requires=">=3.11,<3.14",
    packages=setuptools.find_packages(include=["sbd_plugin", "sbd_plugin.*",
                                               "evaluation", "evaluation.*",
                                               "gin_configs", "gin_configs.*"]),
    # gin resolves `include 'gin_configs/...'` through the Python path, so the
    # configs work from any directory once the plugin is installed.
    package_data={"gin_configs": ["*.gin", "*/*.gin", "studies/*"]},
    py_modules=["_sbd_plugin_hook"],
    install_requires=NUMERIC_PINS + RUNTIME,
    extras_require={
        "gpu": ["tensorflow[and-cuda]==%s" %
                _PINS["NUMERIC_PINS"]["tensorflow"]],
        # requirements/ray.txt pins these two extras and their dependencies
        # (Ray's core: the executor runs without Ray's dashboard).
        "ray": ["ray>=2.9,<3"],
        "slurm": ["submitit>=1.5,<2"],
        "test": ["pytest>=7", "onnx>=1.15,<1.19"],  # onnx: test models
    },
    entry_points={
        "console_scripts": [
            "sbd_study=evaluation.cli:main",
            "sbd_benchmark=evaluation.benchmark.cli:main",
            "sbd_score=evaluation.score_cli:main",
        ],
    },
    cmdclass={"build_py": BuildPyWithHook,
              "editable_wheel": EditableWheelWithHook},
)
