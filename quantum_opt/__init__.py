"""quantum_opt (in progress)."""
