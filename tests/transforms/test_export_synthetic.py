import csv
import json

import numpy as np
import pytest

from gemix_monai.mixing import DirichletBetaSampler, OneHotSampler
from gemix_monai.transforms import SyntheticDataset, export_synthetic

K = 3


def _export(gen, out, **kw):
    kw.setdefault("num_images", 7)
    return export_synthetic(
        gen, kw.pop("sampler", DirichletBetaSampler(K)), out, seed=kw.pop("seed", 5), batch_size=3, **kw
    )


def _read_image(path):
    """As a MONAI user reads it: LoadImage + channel first (MONAI's orientation), back in [-1, 1] for PNG."""
    from monai.transforms import LoadImage

    arr = np.asarray(LoadImage(image_only=True, ensure_channel_first=True)(str(path)), dtype=np.float32)[0]
    return arr / 127.5 - 1 if path.suffix == ".png" else arr


@pytest.mark.parametrize("fmt", ["nifti", "png"])
def test_export_writes_images_csv_and_datalist(standin_generator, tmp_path, fmt):
    datalist_path = _export(standin_generator, tmp_path, fmt=fmt)
    datalist = json.loads(datalist_path.read_text())
    assert datalist["sampler"] == DirichletBetaSampler(K).params() and datalist["seed"] == 5
    assert len(datalist["training"]) == 7 and datalist["class_names"] == standin_generator.class_names
    images, labels = SyntheticDataset(standin_generator, DirichletBetaSampler(K), num_images=7, seed=5).generate(
        range(7)
    )
    rows = list(csv.reader((tmp_path / "labels.csv").open()))
    assert rows[0] == ["image", *standin_generator.class_names] and len(rows) == 8
    for i, entry in enumerate(datalist["training"]):
        np.testing.assert_allclose(entry["label"], labels[i].numpy(), rtol=0, atol=1e-7)
        np.testing.assert_allclose([float(v) for v in rows[i + 1][1:]], labels[i].numpy(), atol=1e-7)
        stored = _read_image(tmp_path / entry["image"])
        atol = 1 / 127.5 if fmt == "png" else 0
        np.testing.assert_allclose(
            stored, images[i, 0].numpy(), atol=atol + 1e-5
        )  # BLAS blocking differs by batch size


def test_per_class_export_balances_classes(standin_generator, tmp_path):
    datalist = json.loads(
        export_synthetic(standin_generator, OneHotSampler(K), tmp_path, per_class=2, batch_size=4).read_text()
    )
    classes = [int(np.argmax(e["label"])) for e in datalist["training"]]
    assert classes == [0, 0, 1, 1, 2, 2]


def test_rerun_is_idempotent_and_generates_nothing(counting_generator, tmp_path):
    gen = counting_generator()
    first = _export(gen, tmp_path).read_text()
    calls = gen.calls
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()}
    second = _export(gen, tmp_path).read_text()
    assert gen.calls == calls and first == second
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "images").iterdir()}


def test_export_resumes_after_an_interruption(counting_generator, tmp_path):
    crashing = counting_generator(fail_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        _export(crashing, tmp_path / "resumed")
    written = sorted(p.name for p in (tmp_path / "resumed" / "images").iterdir())
    assert written == [
        "synth_000000.nii.gz",
        "synth_000001.nii.gz",
        "synth_000002.nii.gz",
    ]  # first batch only, no temp file
    assert not (tmp_path / "resumed" / "datalist.json").exists()
    stamps = {name: (tmp_path / "resumed" / "images" / name).stat().st_mtime_ns for name in written}
    # A temp file left by a process killed mid-write is removed on resume.
    (tmp_path / "resumed" / "images" / ".synth_000003.nii.gz.abc.tmp").write_bytes(b"partial")

    resumed = counting_generator()
    _export(resumed, tmp_path / "resumed")
    assert resumed.calls == 2  # 4 missing images in batches of 3
    assert stamps == {name: (tmp_path / "resumed" / "images" / name).stat().st_mtime_ns for name in written}
    assert not list((tmp_path / "resumed" / "images").glob(".*"))

    _export(counting_generator(), tmp_path / "clean")
    for name in ("datalist.json", "labels.csv"):
        assert (tmp_path / "resumed" / name).read_text() == (tmp_path / "clean" / name).read_text()
    for p in sorted((tmp_path / "clean" / "images").iterdir()):
        assert p.read_bytes() == (tmp_path / "resumed" / "images" / p.name).read_bytes()


@pytest.mark.parametrize(
    "change, match",
    [
        ({"sampler": DirichletBetaSampler(K, beta=1.0)}, "sampler"),
        ({"seed": 6}, "seed"),
        ({"num_images": 8}, "num_images"),
        ({"fmt": "png"}, "fmt"),
    ],
)
def test_rerun_with_other_settings_into_the_same_folder_is_an_error(standin_generator, tmp_path, change, match):
    _export(standin_generator, tmp_path)
    with pytest.raises(ValueError, match=f"different settings.*{match}"):
        _export(standin_generator, tmp_path, **change)


def test_rerun_with_another_generator_is_an_error(standin_generator, tmp_path):
    from _helpers import StandInGenerator

    _export(standin_generator, tmp_path)
    with pytest.raises(ValueError, match="generator"):
        _export(StandInGenerator(seed=1), tmp_path)


def test_unknown_format_is_refused(standin_generator, tmp_path):
    with pytest.raises(ValueError, match="fmt must be one of"):
        _export(standin_generator, tmp_path, fmt="jpeg")


def test_png_export_refuses_two_channels(tmp_path):
    from _helpers import StandInGenerator

    with pytest.raises(ValueError, match="PNG export supports 1 or 3 channels"):
        _export(StandInGenerator(img_channels=2), tmp_path, fmt="png")


def test_multichannel_nifti_keeps_channels_last(tmp_path):
    from _helpers import StandInGenerator

    gen = StandInGenerator(img_channels=2, img_resolution=8)
    datalist = json.loads(_export(gen, tmp_path, num_images=2).read_text())
    stored = _read_image(tmp_path / datalist["training"][1]["image"])
    images, _ = SyntheticDataset(gen, DirichletBetaSampler(K), num_images=2, seed=5).generate([1])
    np.testing.assert_allclose(stored, images[0].permute(1, 2, 0).numpy(), atol=1e-5)
