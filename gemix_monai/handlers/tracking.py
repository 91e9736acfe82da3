"""The settings that decide a run's result, recorded where a person looks for them: MLflow parameters (MONAI's
``--tracking mlflow`` handler) and ``params.json`` in the run's folder.

MONAI's ``MLFlowHandler`` logs only ``max_epochs`` and ``epoch_length`` unless it is given ``experiment_param``, and
``--tracking mlflow`` builds it from MONAI's fixed settings, which no config can extend. :class:`RunParameters`,
listed in a config's handlers before the tracking handlers MONAI appends, hands its parameters to every
``MLFlowHandler`` of the engine when the run starts — before that handler's own ``start`` logs them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events

from gemix_monai.utils import atomic_write_json, plain_data

__all__ = ["RunParameters", "parameter_value"]

#: MLflow's limit on a parameter value (characters); longer values are cut with a note.
MLFLOW_PARAM_LIMIT = 6000


def parameter_value(value: Any) -> Any:
    """A JSON-able description of a setting: a network → its class and channels, a strategy → its name, sampler and
    options, a data contract → its dict, a device → its name; anything else through ``plain_data``."""
    from gemix_monai.data.contract import DataContract
    from gemix_monai.networks.classifiers import describe_network

    if isinstance(value, torch.nn.Module):
        return describe_network(getattr(value, "module", value))
    if isinstance(value, DataContract):
        return value.to_dict()
    if isinstance(value, torch.device):
        return str(value)
    if hasattr(value, "set_epoch") and hasattr(value, "batch_transform"):  # a transforms.strategies.Strategy
        sampler = getattr(value, "sampler", None)
        return {
            "name": value.name,
            "sampler": plain_data(sampler.params(), otherwise="str") if sampler is not None else None,
            **plain_data(dict(getattr(value, "info", {}) or {}), otherwise="str"),
        }
    return plain_data(value, otherwise="str")


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > MLFLOW_PARAM_LIMIT:
        text = text[: MLFLOW_PARAM_LIMIT - 40] + f" ... ({len(text)} characters, see params.json)"
    return text


class RunParameters:
    """Engine handler: ``params`` (name → setting) as MLflow parameters of the run and as ``output_path`` (JSON).

    Attach it before MONAI's tracking handlers (a config's ``train#handlers`` / ``handlers`` list: MONAI appends its
    own at the end). At ``STARTED`` it adds the parameters to the ``experiment_param`` of every MONAI
    ``MLFlowHandler`` attached to the engine, which logs them when its own ``STARTED`` handler runs next; without
    tracking it only writes the file (rank 0).
    """

    def __init__(self, params: Mapping[str, Any], output_path: str | os.PathLike | None = None) -> None:
        self.params = dict(params)
        self.output_path = Path(output_path) if output_path is not None else None
        self.values: dict[str, Any] = {}

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, Events.STARTED):
            engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        self.values = {k: parameter_value(v) for k, v in self.params.items()}
        text = {k: _text(v) for k, v in self.values.items()}
        from monai.handlers import MLFlowHandler

        # Ignite keeps an engine's handlers in ``_event_handlers`` (no public listing): the MLFlowHandlers whose
        # ``start`` is registered for STARTED are the ones that will log this run's parameters
        for handler, _, _ in engine._event_handlers.get(Events.STARTED, []):
            owner = getattr(handler, "__self__", None)
            if isinstance(owner, MLFlowHandler):
                owner.experiment_param = {**(owner.experiment_param or {}), **text}
        if self.output_path is not None and idist.get_rank() == 0:
            atomic_write_json(self.output_path, self.values)
