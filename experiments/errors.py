"""The one error type for bad user input.

The CLI prints its message (one line: the key or argument, the bad value, what is allowed) and exits 2.
"""


class ConfigError(ValueError):
    """Bad user input: a config key, a value, a file or a name. One line, no traceback in the CLI."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the message names the step. The last good checkpoint is kept."""
