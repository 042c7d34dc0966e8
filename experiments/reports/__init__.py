"""Reports over finished runs: ``compare`` (tables with intervals, time to target, plots), post-training stage tables,
efficiency fronts, scaling sections, and the table cells every section writes. Reads run folders through
``experiments.analysis``; never imports the runner."""

from experiments.reports import cells, plots
from experiments.reports.cells import compact, interval, mean_cell, median_cell, number
from experiments.reports.compare import compare, matching_baseline, summary_table, target_table
from experiments.reports.fronts import front_points, front_section, pareto
from experiments.reports.post_tables import post_section
from experiments.reports.scaling_sections import scaling_section, two_and_five

__all__ = [
    "cells",
    "compact",
    "compare",
    "front_points",
    "front_section",
    "interval",
    "matching_baseline",
    "mean_cell",
    "median_cell",
    "number",
    "pareto",
    "plots",
    "post_section",
    "scaling_section",
    "summary_table",
    "target_table",
    "two_and_five",
]
