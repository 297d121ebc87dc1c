import os

import pytest

from sapkit.io.atomic import STAGING_DIR, atomic_path, atomic_write_text, remove_stale_temporaries


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.nii.gz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]


def test_atomic_write_uses_normal_permissions_and_hides_temp_files(tmp_path):
    path = atomic_write_text(tmp_path / "figures" / "a.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with atomic_path(tmp_path / "figures" / "b.json") as tmp:
        assert tmp.parent.name == STAGING_DIR  # a folder glob like figures/*.json never sees it
        assert list((tmp_path / "figures").glob("*.json")) == [path]
        tmp.write_text("{}")
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["a.json", "b.json"]


def test_remove_stale_temporaries_only_touches_the_staging_folder(tmp_path):
    keep = tmp_path / "log.csv"
    keep.write_text("epoch\n1\n")
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "model.pt") as tmp:
        tmp.write_bytes(b"half")
        (tmp.parent / "checkpoint_last.abc123.pt").write_bytes(b"left by a killed writer")
        raise KeyboardInterrupt
    assert not (tmp_path / "model.pt").exists()
    assert remove_stale_temporaries(tmp_path) == 1
    assert not (tmp_path / STAGING_DIR).exists() and keep.read_text() == "epoch\n1\n"
    assert remove_stale_temporaries(tmp_path) == 0
