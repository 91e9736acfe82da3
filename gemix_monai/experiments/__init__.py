"""Experiments built on the engines: ``compare`` (every strategy, same budget, several seeds, intervals)
and ``audit`` (the synthetic-quality audit).

``gemix_monai.experiments.stats`` holds the statistics (numpy/scipy only);
``gemix_monai.experiments.compare`` the comparisons (a package: arms, cells, executors, summary, the classification
and segmentation plans); ``gemix_monai.experiments.audit`` the audits of a generator against the real data
(docs/quality.md); ``gemix_monai.experiments.generator_study`` the generator study; ``gemix_monai.experiments.report``
every table and figure they write. Nothing here parses command-line arguments: that is :mod:`gemix_monai.cli`.
"""

from gemix_monai.experiments.audit import AuditResult, AuditSettings, run_audit
from gemix_monai.experiments.stats import Interval, bootstrap_interval, paired_differences, paired_interval, t_interval

__all__ = [
    "AuditResult",
    "AuditSettings",
    "run_audit",
    "Interval",
    "t_interval",
    "bootstrap_interval",
    "paired_differences",
    "paired_interval",
]
