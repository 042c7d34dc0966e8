"""The one error type for bad user input.

The CLI prints its message (one line: the key or argument, the bad value, what is allowed) and exits 2.
"""

import sys


class ConfigError(ValueError):
    """Bad user input: a config key, a value, a file or a name. One line, no traceback in the CLI."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; the message names the step. The last good checkpoint is kept."""


def exit_code(fn, *args, **kwargs) -> int:
    """Run ``fn`` the way the command line does: its return value (0 if None), or one printed line and exit 2 for
    bad input, 1 for a diverged run, 130 for an interrupt."""
    try:
        return fn(*args, **kwargs) or 0
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"diverged: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
