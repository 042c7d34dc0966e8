"""hybrid (in progress)."""
