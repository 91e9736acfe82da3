"""The audits of a generator against the real data (docs/quality.md, docs/segmentation.md): ``images`` (FD, KID,
precision/recall, MS-SSIM diversity, memorisation, with a held-out real floor) and ``pairs`` (the same on the images of
an image–mask generator, plus mask realism and image–mask consistency). Their tables and figures are formatted by
:mod:`gemix_monai.experiments.report`."""

from .images import AUDIT_FORMAT, AuditResult, AuditSettings, audit_splits, run_audit
from .pairs import MASK_STATISTICS, PAIR_AUDIT_FORMAT, mask_statistics, run_pair_audit

__all__ = [
    "AUDIT_FORMAT",
    "AuditResult",
    "AuditSettings",
    "audit_splits",
    "run_audit",
    "PAIR_AUDIT_FORMAT",
    "MASK_STATISTICS",
    "mask_statistics",
    "run_pair_audit",
]
