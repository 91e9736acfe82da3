"""gemix_monai.handlers"""

# clinical reports and feature t-SNE (classifier side)
# GAN training: EMA generator, ADA controller, checkpoints, sample grids, TensorBoard
from gemix_monai.handlers.gan import (  # noqa: E402
    AdaptiveAugmentHandler,
    GanCheckpointHandler,
    GanTensorBoardHandler,
    GeneratorEmaHandler,
    SampleGridHandler,
)
from gemix_monai.handlers.report import ClassificationReportWriter, write_classification_report  # noqa: E402
from gemix_monai.handlers.tsne import FeatureTSNEPlotter, extract_features, plot_feature_tsne  # noqa: E402
