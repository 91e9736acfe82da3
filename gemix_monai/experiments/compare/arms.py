"""The compared settings (*arms*): a strategy name or a named variant of one with its own keyword arguments
(``gemix@ratio0.5`` = ``gemix`` with ``synthetic_ratio=0.5``), and their expansion over generator families."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gemix_monai.transforms.strategies import STRATEGIES, StrategyOptions, needs_generator

__all__ = ["Arm", "EXTRA_VARIANT_KEYS", "variant_keys", "make_arm", "parse_variant", "resolve_arms", "expand_arms"]

#: Variant keys besides ``build_strategy``'s keyword arguments.
EXTRA_VARIANT_KEYS = ("class_weighted",)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+@=-]*$")


@dataclass(frozen=True)
class Arm:
    """One compared setting: ``strategy`` with ``kwargs`` (``build_strategy`` keyword arguments and
    ``class_weighted``), shown as ``name``."""

    name: str
    strategy: str
    kwargs: dict = field(default_factory=dict)
    #: generator family behind the arm (``gemix_monai.generators.GENERATOR_FAMILIES``)
    family: str = "stylegan2"

    @property
    def needs_generator(self) -> bool:
        return needs_generator(self.strategy)


def variant_keys() -> set[str]:
    """What a variant may set: ``build_strategy``'s options (:class:`StrategyOptions`, ``synthetic_pool``) and
    :data:`EXTRA_VARIANT_KEYS`."""
    return set(StrategyOptions.keywords()) | {"synthetic_pool"} | set(EXTRA_VARIANT_KEYS)


def _check_strategy(name: str, where: str) -> None:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r} in {where}; expected one of {list(STRATEGIES)}")


def make_arm(name: str, strategy: str, kwargs: Mapping | None, where: str) -> Arm:
    """A checked :class:`Arm`; errors name ``where`` (the option or key it came from)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"variant name {name!r} in {where}: use letters, digits and _ . + @ = - (no '/' or spaces)")
    _check_strategy(strategy, where)
    kwargs = dict(kwargs or {})
    unknown = sorted(set(kwargs) - variant_keys())
    if unknown:
        raise ValueError(
            f"variant {name!r} in {where}: unknown keyword(s) {unknown}; expected keys of "
            f"build_strategy or {list(EXTRA_VARIANT_KEYS)}: {sorted(variant_keys())}"
        )
    return Arm(name, strategy, kwargs)


def parse_variant(text: str) -> Arm:
    """``"NAME=STRATEGY"`` or ``"NAME=STRATEGY:{python dict}"`` → :class:`Arm`.

    Example: ``"gemix@ratio0.5=gemix:{'synthetic_ratio': 0.5}"``,
    ``"softmax_t@T0.5=softmax_t:{'sampler_kwargs': {'temperature': 0.5}}"``,
    ``"real@cw=real:{'class_weighted': True}"``.
    """
    where = f"--variant {text!r}"
    if "=" not in text:
        raise ValueError(f"{where}: expected NAME=STRATEGY:{{python dict}}")
    name, spec = (s.strip() for s in text.split("=", 1))
    strategy, _, raw = spec.partition(":")
    kwargs: object = {}
    if raw.strip():
        try:
            kwargs = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError) as e:
            raise ValueError(f"{where}: the part after ':' must be a Python dict literal ({e})") from e
        if not isinstance(kwargs, dict):
            raise ValueError(f"{where}: the part after ':' must be a dict, got {type(kwargs).__name__}")
    return make_arm(name, strategy.strip(), kwargs, where)


def _defined_variants(variants) -> dict[str, Arm]:
    defined: dict[str, Arm] = {}
    if isinstance(variants, Mapping):
        for name, spec in variants.items():
            if isinstance(spec, str):
                arm = parse_variant(f"{name}={spec}")
            elif isinstance(spec, Mapping) and "strategy" in spec:
                arm = make_arm(
                    name, spec["strategy"], {k: v for k, v in spec.items() if k != "strategy"}, f"variants[{name!r}]"
                )
            else:
                raise ValueError(f"variants[{name!r}]: expected 'STRATEGY:{{...}}' or a dict with a 'strategy' key")
            defined[arm.name] = arm
    else:
        for v in variants or ():
            arm = v if isinstance(v, Arm) else parse_variant(v)
            defined[arm.name] = arm
    for name in defined:
        if name in STRATEGIES:
            raise ValueError(
                f"variant name {name!r} is a strategy name; give the variant its own name (e.g. {name}@...)"
            )
    return defined


def resolve_arms(strategies: Sequence[str], variants) -> list[Arm]:
    """The arms of ``strategies`` (names of strategies or of ``variants``), then the variants not listed there.

    ``variants``: ``["NAME=STRATEGY:{...}", ...]``, :class:`Arm` objects, or
    ``{NAME: "STRATEGY:{...}" | {"strategy": ..., **kwargs}}``."""
    defined = _defined_variants(variants)
    arms: list[Arm] = []
    for s in strategies:
        if s in defined:
            arms.append(defined[s])
        else:
            _check_strategy(s, "strategies")
            arms.append(Arm(s, s, {}))
    arms += [a for name, a in defined.items() if name not in strategies]
    names = [a.name for a in arms]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"strategies listed twice: {dup}")
    if not arms:
        raise ValueError("no strategies to compare")
    return arms


def expand_arms(arms: Sequence[Arm], families: Sequence[str]) -> list[Arm]:
    """One arm per generator arm × family: StyleGAN2 keeps the arm's name, another family ``F`` makes ``<name>@F``;
    generator-free arms appear once."""
    out: list[Arm] = []
    for arm in arms:
        if not arm.needs_generator:
            out.append(arm)
            continue
        for f in families:
            out.append(arm if f == "stylegan2" else Arm(f"{arm.name}@{f}", arm.strategy, dict(arm.kwargs), f))
    return out
