"""Experiments built on the library: the synthetic-quality audit (``audit``)."""

from gemix_monai.experiments.audit import AuditResult, run_audit

__all__ = ["AuditResult", "run_audit"]
