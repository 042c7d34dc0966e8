"""Registers the hybrid path with the experiment runner."""
