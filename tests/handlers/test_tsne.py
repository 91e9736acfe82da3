"""Feature t-SNE: features from any layer, real/synthetic/mixed points in one plot."""

import pytest
import torch
from ignite.engine import Engine
from PIL import Image

from gemix_monai.handlers.tsne import FeatureTSNEPlotter, extract_features, plot_feature_tsne


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    )


def _batches(n_batches=3, b=6, soft=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        label = torch.softmax(torch.randn(b, 3, generator=g), 1) if soft else torch.randint(0, 3, (b,), generator=g)
        out.append({"image": torch.randn(b, 1, 8, 8, generator=g), "label": label})
    return out


@pytest.mark.parametrize("layer,dim", [("0", 4), ("3", 4), ("4", 3)])
def test_features_come_from_the_named_layer(layer, dim):
    net = _net().train()
    f, y = extract_features(net, layer, _batches())
    assert f.shape == (18, dim) and y.shape == (18,)
    assert net.training  # mode restored


def test_soft_labels_are_coloured_by_their_arg_max():
    batches = _batches(soft=True)
    _, y = extract_features(_net(), "4", batches)
    assert torch.equal(y, torch.cat([b["label"].argmax(1) for b in batches]))


def test_max_points_limits_each_source():
    f, _ = extract_features(_net(), "4", _batches(), max_points=10)
    assert f.shape[0] == 10


def test_unknown_layer_lists_some_names():
    with pytest.raises(ValueError, match="layer 'fc' is not a module"):
        extract_features(_net(), "fc", _batches())


def test_plot_of_three_sources_is_written(tmp_path):
    net = _net()
    groups = {
        name: extract_features(net, "3", _batches(seed=i)) for i, name in enumerate(["real", "synthetic", "mixed"])
    }
    path = plot_feature_tsne(groups, tmp_path / "tsne.png", ["a", "b", "c"], perplexity=5)
    with Image.open(path) as im:
        assert im.format == "PNG"


def test_groups_with_different_feature_sizes_are_rejected(tmp_path):
    groups = {"real": (torch.randn(5, 4), torch.zeros(5)), "synthetic": (torch.randn(5, 3), torch.zeros(5))}
    with pytest.raises(ValueError, match="same feature size"):
        plot_feature_tsne(groups, tmp_path / "x.png")


def test_handler_plots_after_evaluation(tmp_path):
    net = _net()
    plotter = FeatureTSNEPlotter(
        net, "3", {"real": _batches(), "synthetic": _batches(seed=1)}, tmp_path / "t.png", per_epoch=True, perplexity=5
    )
    engine = Engine(lambda e, b: None)
    plotter.attach(engine)
    engine.run([0], max_epochs=1)
    assert plotter.last_path == tmp_path / "t_epoch1.png" and plotter.last_path.is_file()


def test_features_of_real_metatensor_batches_can_be_cut_to_max_points():
    # real validation images are MetaTensors with per-item metadata; the features must come back plain
    from monai.data import DataLoader, MetaTensor

    from gemix_monai.engines.classifier_networks import build_classifier_network
    from gemix_monai.handlers.tsne import extract_features

    items = [
        {"image": MetaTensor(torch.randn(1, 32, 32), meta={"filename_or_obj": f"img{i}.png"}), "label": i % 3}
        for i in range(10)
    ]
    net = build_classifier_network("tiny", 1, 3)
    feats, labels = extract_features(net, "pool", DataLoader(items, batch_size=4), max_points=6)
    assert type(feats) is torch.Tensor and feats.shape[0] == 6 and labels.tolist() == [0, 1, 2, 0, 1, 2]
