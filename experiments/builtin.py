"""Built-in generic task and model (filled in by the runner)."""
