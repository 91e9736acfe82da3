"""A comparison's settings as two objects (docs/experiments.md): :class:`CompareSettings`, what decides its results
(every field reaches the cells' ``cell.json`` configs under the same name), and :class:`CompareRunOptions`, where
the data comes from and how the cells run (free to change between runs of one folder)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gemix_monai.experiments.stats import METHODS

__all__ = ["CompareSettings", "CompareRunOptions"]


@dataclass(frozen=True)
class CompareSettings:
    """The budget of one comparison, checked and normalised by :meth:`checked`.

    Args:
        strategies: strategy and variant names (``variants`` defines the latter).
        seeds: the classifier (or segmenter) seeds; ``gan_seeds``: one generator per GAN seed and family.
        networks: classifier (segmenter) network names.
        gan_kimg / gan_batch_size / gan_preset: each generator's budget [kimg], batch and preset.
        generators: generator families (``stylegan2``, ``dcgan``, ``diffusion``).
        epochs / batch_size / learning_rate / weight_decay / image_size / key_metric: every downstream cell's
            budget (``learning_rate`` keeps its name because the cells' ``cell.json`` record it so; the trainers call
            it ``lr``).
        interval / confidence: the summary's interval method (``t`` or ``bootstrap``) and level.
        gan_class_balance / gan_select / pool_size: the generators' class balance, their audit-chosen ``best.pt``
            criterion, and the synthetic pool size (0: on the fly); each enters a cell's config only when not at its
            default, so folders made before they existed stay valid.
        generator_files: ``{label: generator file}`` trained elsewhere (e.g. by ``study-generators``): each label is a
            generator "family" of its own whose GAN cell copies that file instead of training (its config records the
            file's sha256), with arms ``<strategy>@<label>``.
        data_options: ``get_dataset`` keywords (``hu_window``, ``intensity``, ``split_seed``, ...), in every cell's
            config when given.
    """

    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    gan_seeds: tuple[int, ...]
    networks: tuple[str, ...]
    gan_kimg: float
    gan_batch_size: int
    gan_preset: str
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    image_size: int
    interval: str
    confidence: float
    key_metric: str = "macro_f1"
    generators: tuple[str, ...] = ("stylegan2",)
    gan_class_balance: str = "none"
    gan_select: str | None = None
    pool_size: int = 0
    generator_files: Mapping = field(default_factory=dict)
    data_options: Mapping = field(default_factory=dict)

    @classmethod
    def checked(
        cls,
        defaults: Mapping,
        given: Mapping,
        known_networks: Sequence[str],
        network_word: str = "network",
        known_families: Sequence[str] = ("stylegan2",),
    ) -> CompareSettings:
        """``defaults`` updated with the ``given`` values that are not ``None``, checked: seeds (a count or a list)
        and GAN seeds without repeats, networks among ``known_networks`` (errors say ``network_word``), generator
        families among ``known_families``, the interval method, the numeric budgets."""
        s = {**dict(defaults), **{k: v for k, v in given.items() if v is not None}}
        unknown = sorted(set(s) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown comparison settings {unknown}")
        seeds = s["seeds"]
        s["seeds"] = tuple(range(int(seeds))) if isinstance(seeds, int) else tuple(int(x) for x in seeds)
        if not s["seeds"]:
            raise ValueError("seeds: at least one seed is needed")
        s["gan_seeds"] = tuple(int(x) for x in s["gan_seeds"])
        for key in ("seeds", "gan_seeds"):
            if len(set(s[key])) != len(s[key]):
                raise ValueError(f"{key} has repeated values: {list(s[key])}")
        s["networks"] = tuple(s["networks"])
        for n in s["networks"]:
            if n not in known_networks:
                raise ValueError(f"unknown {network_word} {n!r}; expected one of {list(known_networks)}")
        s["generator_files"] = {str(k): str(v) for k, v in dict(s.get("generator_files") or {}).items()}
        for label, path in s["generator_files"].items():
            if not label or not label.replace("-", "").replace("_", "").isalnum() or label in known_families:
                raise ValueError(
                    f"generator file label {label!r} must be letters, digits, '-' or '_' and not a family name"
                )
            if not os.path.isfile(path):
                raise FileNotFoundError(f"generator file {label}={path}: no such file")
        if s["generator_files"] and given.get("generators") is None:
            s["generators"] = tuple(s["generator_files"])  # given files replace the default StyleGAN2 training
        s["generators"] = tuple(dict.fromkeys(s.get("generators", ("stylegan2",))))
        known_families = (*known_families, *s["generator_files"])
        for f in s["generators"]:
            if f not in known_families:
                raise ValueError(f"unknown generator family {f!r}; expected one of {list(known_families)}")
        if not s["generators"]:
            raise ValueError("generators: at least one generator family is needed")
        if s["interval"] not in METHODS:
            raise ValueError(f"unknown interval {s['interval']!r}; expected one of {list(METHODS)}")
        s["gan_kimg"] = float(s["gan_kimg"])
        for key in ("epochs", "batch_size", "gan_batch_size", "image_size"):
            s[key] = int(s[key])
        s["strategies"] = tuple(s["strategies"])
        s["data_options"] = dict(s.get("data_options") or {})
        return cls(**s)

    def replace(self, **changes) -> CompareSettings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class CompareRunOptions:
    """Where a comparison's data comes from and how its cells run; none of it enters a cell's config.

    Args:
        dataset_dir / datalist: the data (one of them; default the embedded phantoms, written to ``<out>/data``
            with ``phantom_counts`` / ``val_counts`` / ``test_counts`` per class).
        jobs: ``> 1`` runs the cells as that many concurrent worker processes (:class:`SubprocessExecutor`);
            ``executor`` (a :class:`~gemix_monai.experiments.compare.runner.CellExecutor`) replaces that choice.
        cell: run only that cell (its dependencies must be finished) and write no summary.
        list_cells: return (and, with ``verbose``, print) the cell ids in dependency order; nothing runs.
        device: ``cpu``, ``cuda``... (default CUDA when available); verbose: progress lines; quiet: engines' INFO
            logs muted.
    """

    dataset_dir: str | None = None
    datalist: str | None = None
    phantom_counts: Sequence[int] | None = None
    val_counts: Sequence[int] | None = None
    test_counts: Sequence[int] | None = None
    jobs: int = 1
    cell: str | None = None
    list_cells: bool = False
    device: str | None = None
    verbose: bool = True
    quiet: bool = True
    executor: object = None

    def replace(self, **changes) -> CompareRunOptions:
        return dataclasses.replace(self, **changes)
