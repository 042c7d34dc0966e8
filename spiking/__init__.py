"""spiking (in progress)."""
