"""Registers the spiking path with the experiment runner."""
