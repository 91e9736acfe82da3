"""export_synthetic resumes by content, not by name: a damaged file is regenerated, with a warning naming it."""

import hashlib
import warnings

import pytest
from _helpers import small_generator

from gemix_monai.mixing import DirichletBetaSampler
from gemix_monai.transforms import export_synthetic
from gemix_monai.transforms.export import CHECKSUMS_NAME

K = 3


def _export(gen, out, fmt="nifti"):
    return export_synthetic(gen, DirichletBetaSampler(K), out, num_images=7, seed=5, batch_size=3, fmt=fmt)


def _sums(out):
    return dict(reversed(line.split("  ", 1)) for line in (out / CHECKSUMS_NAME).read_text().splitlines())


@pytest.mark.parametrize("fmt", ["nifti", "png"])
def test_checksums_are_recorded_for_every_image(standin_generator, tmp_path, fmt):
    _export(standin_generator, tmp_path, fmt)
    sums = _sums(tmp_path)
    images = sorted((tmp_path / "images").iterdir())
    assert sorted(sums) == [f"images/{p.name}" for p in images] and len(images) == 7
    for p in images:
        assert sums[f"images/{p.name}"] == hashlib.sha256(p.read_bytes()).hexdigest()
    # sha256sum -c format: "<64 hex>  <path>", in image order
    assert (
        (tmp_path / CHECKSUMS_NAME)
        .read_text()
        .splitlines()[0]
        .endswith("  images/synth_000000" + (".nii.gz" if fmt == "nifti" else ".png"))
    )


@pytest.mark.parametrize("damage", ["truncate", "replace", "empty"])
def test_a_damaged_file_is_regenerated_on_resume_with_a_warning(counting_generator, tmp_path, damage):
    _export(counting_generator(), tmp_path)
    target = tmp_path / "images" / "synth_000004.nii.gz"
    original = target.read_bytes()
    others = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "images").iterdir() if p != target}
    if damage == "truncate":
        target.write_bytes(original[: len(original) // 2])
    elif damage == "replace":
        target.write_bytes((tmp_path / "images" / "synth_000000.nii.gz").read_bytes())
    else:
        target.write_bytes(b"")

    gen = counting_generator()
    with pytest.warns(UserWarning, match=r"1 file\(s\) .* regenerated: .*synth_000004\.nii\.gz") as record:
        _export(gen, tmp_path)
    assert "synth_000004" in str(record[0].message) and "synth_000003" not in str(record[0].message)
    assert gen.calls == 1  # only the damaged file
    assert target.read_bytes() == original
    assert {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "images").iterdir() if p != target
    } == others
    assert _sums(tmp_path)["images/synth_000004.nii.gz"] == hashlib.sha256(original).hexdigest()
    assert len((tmp_path / CHECKSUMS_NAME).read_text().splitlines()) == 7


def test_intact_files_are_kept_without_a_warning(counting_generator, tmp_path):
    _export(counting_generator(), tmp_path)
    gen = counting_generator()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _export(gen, tmp_path)
    assert gen.calls == 0


def test_files_without_a_recorded_checksum_are_regenerated(counting_generator, tmp_path):
    """A run killed between renaming a file into place and recording its checksum, or an export from before
    checksums were kept: the file cannot be verified, so it is made again (same bytes)."""
    _export(counting_generator(), tmp_path)
    originals = {p.name: p.read_bytes() for p in (tmp_path / "images").iterdir()}
    lines = (tmp_path / CHECKSUMS_NAME).read_text().splitlines()
    (tmp_path / CHECKSUMS_NAME).write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])  # torn last line
    gen = counting_generator()
    _export(gen, tmp_path)
    assert gen.calls == 2  # images 5 and 6: the aligned chunks [3, 6) and [6, 7)
    assert {p.name: p.read_bytes() for p in (tmp_path / "images").iterdir()} == originals
    assert len(_sums(tmp_path)) == 7


def test_interrupted_export_records_what_it_wrote(counting_generator, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _export(counting_generator(fail_on_call=2), tmp_path)
    assert sorted(_sums(tmp_path)) == [f"images/synth_00000{i}.nii.gz" for i in range(3)]
    gen = counting_generator()
    _export(gen, tmp_path)
    assert gen.calls == 2
    assert len(_sums(tmp_path)) == 7


def test_a_truncated_file_of_a_real_generator_export_is_regenerated_byte_for_byte(tmp_path):
    G = small_generator(c_dim=K)
    path = tmp_path / "generator.pt"
    G.save_checkpoint(path)
    export_synthetic(str(path), DirichletBetaSampler(K), tmp_path / "out", num_images=5, seed=1, batch_size=2)
    target = tmp_path / "out" / "images" / "synth_000003.nii.gz"
    original = target.read_bytes()
    target.write_bytes(original[:-10])
    with pytest.warns(UserWarning, match="synth_000003.nii.gz"):
        export_synthetic(str(path), DirichletBetaSampler(K), tmp_path / "out", num_images=5, seed=1, batch_size=2)
    assert target.read_bytes() == original
