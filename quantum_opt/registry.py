"""Registers the quantum_opt path with the experiment runner."""
