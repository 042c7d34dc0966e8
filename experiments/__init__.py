"""The experiment runner: configs, the one training loop, sweeps, comparisons and reports."""
