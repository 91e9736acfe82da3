"""Experiments built on the engines: ``compare`` (every strategy, same budget, several seeds, intervals)
and ``audit`` (the synthetic-quality audit).

``gemix_monai.experiments.stats`` holds the statistics (numpy/scipy only);
``gemix_monai.experiments.compare`` the resumable cells, the summary and the CLI options;
``gemix_monai.experiments.audit`` the audit of a generator against the real data (docs/quality.md).
"""

from gemix_monai.experiments.audit import AuditResult, run_audit
from gemix_monai.experiments.stats import Interval, bootstrap_interval, paired_differences, paired_interval, t_interval

__all__ = [
    "AuditResult",
    "run_audit",
    "Interval",
    "t_interval",
    "bootstrap_interval",
    "paired_differences",
    "paired_interval",
]
