"""The one Markdown table writer of the project (reports, benchmarks, self-test).

Neither jinja2 nor tabulate is installed, so pandas' `to_markdown` cannot be
used.
"""


def _cell(value):
  # A literal pipe would end the cell early.
  return str(value).replace("|", "\\|")


def markdown_table(header, rows):
  """Returns a GitHub-flavoured Markdown table as a list of lines.

  Args:
    header: Sequence of column titles.
    rows: Iterable of sequences of cells (any type; shown with str()).

  Returns:
    List of strings, one per line, without trailing newlines.
  """
  lines = ["| " + " | ".join(_cell(c) for c in header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
  return lines


def frame_to_markdown(strings):
  """Renders a DataFrame (of strings) as a Markdown table; returns one string."""
  return "\n".join(markdown_table(
      list(strings.columns), strings.itertuples(index=False))) + "\n"
