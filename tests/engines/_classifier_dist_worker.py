"""Body of one process of the 2-process classifier test (importable by spawned processes)."""

from __future__ import annotations

import torch


def batchnorm_free_network(seed: int) -> torch.nn.Module:
    """A small CNN without BatchNorm (whose per-process batch statistics would differ from one process's)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 8, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 3),
    )


def train_worker(local_rank: int, cfg: dict) -> None:
    """Train on the phantoms' training split, validate on their validation split; rank 0 saves what it saw."""
    import ignite.distributed as idist

    from gemix_monai.data import get_dataset
    from gemix_monai.engines.classifier import train_classifier

    torch.set_num_threads(1)
    train = get_dataset(cfg["datalist"], "training", image_size=32)
    val = get_dataset(cfg["datalist"], "validation", image_size=32)
    result = train_classifier(
        train,
        val,
        cfg["output_dir"],
        strategy="real",
        network=batchnorm_free_network(cfg["seed"]),
        epochs=2,
        batch_size=4,
        lr=0.05,
        seed=cfg["seed"],
        device="cpu",
        amp=False,
        tensorboard=cfg.get("tensorboard", False),
    )
    if idist.get_rank() == 0:
        torch.save(
            {
                "world_size": idist.get_world_size(),
                "history": result.history,
                "best_metric": result.best_metric,
                "best_epoch": result.best_epoch,
                "report": dict(result.report.scalars),
                "state": torch.load(result.checkpoint, weights_only=True),
            },
            cfg["result"],
        )
