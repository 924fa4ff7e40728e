"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class SwagError(Exception):
    """Bad input: the message names the file (or key) and the problem, on one line."""
