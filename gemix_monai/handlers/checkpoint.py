"""MONAI's ``CheckpointSaver`` with atomic, permission-preserving writes.

:class:`AtomicCheckpointSaver` takes exactly the arguments of ``monai.handlers.CheckpointSaver`` (so a bundle
config reads the same, ``final_filename`` / ``key_metric_filename`` included) and only changes how files reach
the disk. Why not the stock one (measured against MONAI 1.6.1 / pytorch-ignite 0.5.5, see
``tests/handlers/test_checkpoint.py``):

* MONAI builds ignite's ``DiskSaver(atomic=False)``: ``torch.save`` straight into the target. With a fixed
  ``key_metric_filename`` ignite's ``Checkpoint`` *removes* the previous best file before writing the new one,
  so an interruption during the write leaves no ``model.pt`` at all (or a truncated one).
* ignite's ``atomic=True`` writes through ``tempfile.NamedTemporaryFile`` and renames: the file keeps the
  temporary file's mode 0600 (MONAI's own comment gives this as the reason it turns atomicity off), so a
  model trained by one user cannot be served by MONAI Label running as another.

Here every file is written with :func:`gemix_monai.utils.atomic_torch_save` (temporary file in the same folder,
fsync, ``os.replace``, mode from the umask), and replacing a fixed-name file never deletes it first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import ignite.distributed as idist
from ignite.handlers.checkpoint import BaseSaveHandler
from monai.handlers import CheckpointSaver

from gemix_monai.utils import atomic_torch_save

__all__ = ["AtomicCheckpointSaver", "AtomicDiskSaver"]


class AtomicDiskSaver(BaseSaveHandler):
    """ignite save handler: ``atomic_torch_save`` into ``dirname`` (rank 0 only); ``filename`` fixes the name."""

    def __init__(self, dirname: str | os.PathLike, filename: str | None = None) -> None:
        self.dirname = Path(dirname)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        if idist.get_rank() != 0:
            return
        atomic_torch_save(checkpoint, self.dirname / (self.filename or filename))

    def remove(self, filename: str) -> None:
        if idist.get_rank() != 0 or self.filename is not None:
            return  # a fixed-name file is replaced atomically by the next save: deleting it first could lose it
        (self.dirname / filename).unlink(missing_ok=True)


class AtomicCheckpointSaver(CheckpointSaver):
    """``monai.handlers.CheckpointSaver`` whose files are written atomically (see the module docstring)."""

    def __init__(
        self,
        save_dir: str,
        save_dict: dict,
        *args,
        final_filename: str | None = None,
        key_metric_filename: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(
            save_dir, save_dict, *args, final_filename=final_filename, key_metric_filename=key_metric_filename, **kwargs
        )
        for checkpoint, fixed in (
            (self._final_checkpoint, final_filename),
            (self._key_metric_checkpoint, key_metric_filename),
            (self._interval_checkpoint, None),
        ):
            if checkpoint is not None:
                checkpoint.save_handler = AtomicDiskSaver(save_dir, fixed)
