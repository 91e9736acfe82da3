"""Experiments built on the engines: ``compare`` (every strategy, same budget, several seeds, intervals).

``gemix_monai.experiments.stats`` holds the statistics (numpy/scipy only);
``gemix_monai.experiments.compare`` the resumable cells, the summary and the CLI options.
"""

from gemix_monai.experiments.stats import Interval, bootstrap_interval, paired_differences, paired_interval, t_interval

__all__ = ["Interval", "t_interval", "bootstrap_interval", "paired_differences", "paired_interval"]
