"""utils.atomic_write_bytes: permissions follow the umask like open(); a failed write names the file and leaves no temp file."""

import errno
import os
import stat

import pytest

from gemix_monai import utils
from gemix_monai.utils import atomic_torch_save, atomic_write_bytes, safe_torch_load


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask):
        os.umask(mask)

    yield set_mask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_mode_follows_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = atomic_write_bytes(tmp_path / "f.bin", b"abc")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert path.read_bytes() == b"abc"


def test_umask_is_read_without_changing_it(umask):
    umask(0o027)
    assert utils._current_umask() == 0o027
    assert utils._current_umask() == 0o027


def test_replacing_a_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    path.chmod(0o640)
    atomic_write_bytes(path, b"new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_bytes() == b"new"


def test_torch_save_file_mode_follows_the_umask(tmp_path, umask):
    umask(0o022)
    path = atomic_torch_save({"a": 1}, tmp_path / "c.pt")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("durable", [True, False])
def test_disk_full_names_the_target_and_removes_the_temp_file(tmp_path, monkeypatch, durable):
    target = tmp_path / "out" / "image.nii.gz"
    target.parent.mkdir()
    target.write_bytes(b"previous")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    # durable writes fail in fsync, others in fchmod after flush: both are the moment a full disk shows
    monkeypatch.setattr(os, "fsync" if durable else "fchmod", full)
    with pytest.raises(OSError) as info:
        atomic_write_bytes(target, b"x" * 1000, durable=durable)
    assert info.value.errno == errno.ENOSPC
    assert str(target) in str(info.value)
    assert sorted(p.name for p in target.parent.iterdir()) == ["image.nii.gz"]
    assert target.read_bytes() == b"previous"


def test_failed_write_of_the_data_names_the_target(tmp_path, monkeypatch):
    import io

    class Full(io.FileIO):
        def write(self, b):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_fdopen = os.fdopen
    monkeypatch.setattr(
        os, "fdopen", lambda fd, mode="r", *a, **k: Full(fd, "wb") if "w" in mode else real_fdopen(fd, mode, *a, **k)
    )
    target = tmp_path / "t.bin"
    with pytest.raises(OSError, match="No space left") as info:
        atomic_write_bytes(target, b"data")
    assert str(target) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_safe_torch_load_names_a_truncated_file(tmp_path):
    path = atomic_torch_save({"w": list(range(1000))}, tmp_path / "ck.pt")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="ck.pt"):
        safe_torch_load(path)


def test_atomic_write_json_writes_indented_json_and_leaves_no_temporary_file(tmp_path):
    import json

    from gemix_monai.utils import atomic_write_json

    path = atomic_write_json(tmp_path / "sub" / "a.json", {"b": [1, 2]})
    assert path.read_text(encoding="utf-8") == json.dumps({"b": [1, 2]}, indent=2) + "\n"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]
