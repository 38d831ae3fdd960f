"""Tasks as processes of this machine, started and watched by the runner.

The runner keeps `--jobs` trainings and one evaluation running at once
(`evaluation.runner.Pipeline`); this executor starts each worker from the
runner's main thread, so a killed runner takes its workers along
(`processes.die_with_parent`).
"""
import time

from evaluation import processes
from evaluation.executors import base


class LocalExecutor(base.Executor):
  """Runs each task as a child process of the runner."""

  def __init__(self, settings):
    super(LocalExecutor, self).__init__(settings)
    self._children = processes.Children()
    self._running = {}  # subprocess.Popen -> Task
    self._refused = []  # Tasks submitted after stop().

  def submit(self, tasks):
    for task in tasks:
      with open(task.log_path, "a") as log:
        proc = self._children.start(list(task.command), log,
                                    base.worker_env(task.env))
      if proc is None:
        self._refused.append(task)
      else:
        self._running[proc] = task

  def _ended(self):
    ended = [(task, "the runner is stopping") for task in self._refused]
    self._refused = []
    for proc, task in list(self._running.items()):
      code = self._children.poll(proc)
      if code is not None:
        del self._running[proc]
        ended.append((task, base.exit_error(code)))
    return ended

  def wait(self, timeout):
    deadline = time.time() + timeout
    ended = self._ended()
    while not ended and time.time() < deadline:
      time.sleep(min(0.2, max(0.0, deadline - time.time())))
      ended = self._ended()
    return ended

  def stop(self):
    self._children.terminate_all()
