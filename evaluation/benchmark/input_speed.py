"""Input benchmark: images/s of dlib's trainer input, stock vs plugin."""
from evaluation.benchmark import formatting
from evaluation.benchmark import harness


def _input_graph(data, batch_size, batched, seed=0):
  """Builds dlib's trainer input with the stock or the plugin pipeline."""
  import gin  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.methods.unsupervised import train  # pylint: disable=g-import-not-at-top
  graph = tf.Graph()
  with graph.as_default():
    # The pipeline reads `input_pipeline.batched` when the data set is built.
    with gin.unlock_config():
      gin.bind_parameter("input_pipeline.batched", batched)
    try:
      images = train._make_input_fn(data, seed)({"batch_size": batch_size})  # pylint: disable=protected-access
    finally:
      gin.clear_config()
  return graph, images


def measure_input(name, batch_size, seconds, repeats):
  """Images/s of dlib's trainer input, stock vs plugin pipeline.

  Both go through train._make_input_fn, as in dlib's trainer; a session pulls
  batches with sess.run(get_next.op), which produces each batch without
  copying it to numpy (a train_op consumes it the same way).

  Args:
    name: Dataset name.
    batch_size: Images per batch.
    seconds: Minimum seconds per measurement.
    repeats: Measurements per pipeline (best kept), taken alternately.

  Returns:
    Dict with "stock" and "plugin" images/s.
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  data = harness.dataset(name)
  sessions = {}
  for kind, batched in (("stock", False), ("plugin", True)):
    graph, images = _input_graph(data, batch_size, batched)
    sess = tf.Session(graph=graph, config=harness.session_config("cpu"))
    for _ in range(3):
      sess.run(images.op)  # Warm-up: graph set-up, generator start.
    sessions[kind] = (sess, images.op)
  batches_per_second = harness.best_rates(sessions, repeats, seconds, 3)
  return {kind: batch_size * rate for kind, rate in batches_per_second.items()}


def report_input(report, datasets, batch_size, sizes):
  """Measures and reports the input part.

  Args:
    report: formatting.Report to print to.
    datasets: Dataset names.
    batch_size: Images per batch.
    sizes: Dict with input_seconds and repeats.

  Returns:
    Dict from dataset name to the rates of measure_input.
  """
  report.section("Input pipeline: images/s of dlib's train._make_input_fn, "
                 "batch %d" % batch_size)
  rows, ratios, input_rates = [], [], {}
  for name in datasets:
    rates = measure_input(name, batch_size, sizes["input_seconds"],
                          sizes["repeats"])
    input_rates[name] = rates
    r = formatting.ratio(rates["plugin"], rates["stock"])
    rows.append([name, formatting.format_rate(rates["stock"]),
                 formatting.format_rate(rates["plugin"]),
                 formatting.format_ratio(r)])
    ratios.append("input ratio %s: %s (plugin / stock)" % (
        name, formatting.format_ratio(r)))
  report.table(["dataset", "stock img/s", "plugin img/s", "plugin/stock"],
               rows)
  for line in ratios:
    report.note(line)
  return input_rates
