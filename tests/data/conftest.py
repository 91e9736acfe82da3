import warnings
from pathlib import Path

import numpy as np
import pytest

warnings.filterwarnings("ignore", message=".*nvImageCodec.*")


@pytest.fixture(scope="session")
def ct_small():
    """pydicom's real CT slice: 128×128, int16 stored values, RescaleSlope 1, RescaleIntercept -1024."""
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm"))


@pytest.fixture(scope="session")
def nibabel_data():
    import nibabel

    return Path(nibabel.__file__).parent / "tests" / "data"


@pytest.fixture(scope="session")
def small_phantoms(tmp_path_factory):
    """A tiny phantom dataset per format: (datalist path) keyed by fmt."""
    from gemix_monai.data.phantoms import generate_phantom_dataset

    root = tmp_path_factory.mktemp("phantoms")
    return {
        fmt: generate_phantom_dataset(
            root / fmt, image_size=48, counts=(4, 3, 3), seed=7, fmt=fmt, val_counts=(1, 1, 1), test_counts=(2, 1, 1)
        )
        for fmt in ("nifti", "dicom")
    }


@pytest.fixture(scope="session")
def default_phantoms(tmp_path_factory):
    """The default dataset (681 training images, 64 px, NIfTI) exactly as get_dataset(None) builds it."""
    from gemix_monai.data import default_phantom_datalist

    root = tmp_path_factory.mktemp("default_cache")
    return default_phantom_datalist(data_dir=root), root


def _write_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def write_png():
    """``write_png(path, uint8 array [rows, cols(, 3)])`` → path of a real PNG file."""
    return _write_png


@pytest.fixture
def png_folder(tmp_path):
    """root/<class>/*.png, 2 classes × 5 grey 20×30 (rows×cols) images whose brightness encodes the class."""
    rng = np.random.default_rng(0)
    root = tmp_path / "pngs"
    for label, name in enumerate(("normal", "pneumonia")):
        for i in range(5):
            arr = rng.integers(0, 60, size=(20, 30), dtype=np.uint8) + np.uint8(100 * label)
            _write_png(root / name / f"{name}_{i}.png", arr)
    return root
