"""gemix_monai.engines"""

# classifier training/evaluation (strategy switch, clinical metrics, reports), imported on first use
_CLASSIFIER_API = (
    "create_classifier_evaluator",
    "create_classifier_trainer",
    "evaluate_classifier",
    "train_classifier",
)


def __getattr__(name):
    if name in _CLASSIFIER_API:
        from gemix_monai.engines import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'gemix_monai.engines' has no attribute {name!r}")


# conditional StyleGAN2-ADA training (Ignite engine, phase schedule, exact resume, multi-process)
from gemix_monai.engines.gan import (  # noqa: E402
    ConditionalGanTrainer,
    GanTrainingOptions,
    create_gan_trainer,
    train_gan,
)
