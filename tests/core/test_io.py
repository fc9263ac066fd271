"""Atomic writers: the destination is either complete or untouched, and no temporary file is left behind."""

import os
import stat

import numpy as np
import pytest

from bmrsparse.io import atomic_path, atomic_savez, atomic_write_bytes, atomic_write_text


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_bytes_and_text_create_parents_and_overwrite(tmp_path):
    target = tmp_path / "a" / "b" / "out.bin"
    atomic_write_bytes(target, b"\x00\x01first")
    assert target.read_bytes() == b"\x00\x01first"
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    text_target = tmp_path / "a" / "note.txt"
    atomic_write_text(text_target, "Δ F = 1\n")
    assert text_target.read_text(encoding="utf-8") == "Δ F = 1\n"
    assert _listing(tmp_path / "a") == ["b", "note.txt"]
    assert _listing(tmp_path / "a" / "b") == ["out.bin"]


def test_written_file_gets_umask_permissions_not_mkstemp_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "perm.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "perm.txt").stat().st_mode) == 0o644


def test_write_bytes_rejects_wrong_type_and_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="must be bytes"):
        atomic_write_bytes(tmp_path / "x.bin", "not bytes")
    with pytest.raises(TypeError, match="must be str"):
        atomic_write_text(tmp_path / "x.txt", b"not text")
    assert _listing(tmp_path) == []


def test_atomic_path_keeps_suffix_and_renames_on_success(tmp_path):
    target = tmp_path / "fig1.pdf"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.suffix == ".pdf"
        assert tmp != target
        tmp.write_bytes(b"%PDF-fake")
        assert not target.exists()  # nothing visible under the real name until the block ends
    assert target.read_bytes() == b"%PDF-fake"
    assert _listing(tmp_path) == ["fig1.pdf"]


def test_atomic_path_failure_leaves_nothing_new(tmp_path):
    target = tmp_path / "sub" / "metrics.csv"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("epoch,acc\n0,0.5\n")  # partially written output
            raise RuntimeError("boom")
    assert not target.exists()
    assert _listing(tmp_path / "sub") == []


def test_atomic_path_failure_keeps_previous_content(tmp_path):
    target = tmp_path / "state.npz"
    atomic_savez(target, step=np.array(7))
    before = target.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a file")
            raise KeyboardInterrupt  # BaseException, like a Ctrl-C during a write
    assert target.read_bytes() == before
    assert _listing(tmp_path) == ["state.npz"]


def test_atomic_path_block_that_deletes_its_temp_file_is_an_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(FileNotFoundError, match="temporary file"):
        with atomic_path(target) as tmp:
            tmp.unlink()
    assert _listing(tmp_path) == []


def test_atomic_savez_round_trip_uses_exact_name(tmp_path):
    target = tmp_path / "nested" / "arrays.data"  # np.savez alone would append .npz
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    atomic_savez(target, x=x, name=np.array("fashion_mnist"), k=np.int64(3))
    assert _listing(tmp_path / "nested") == ["arrays.data"]
    with np.load(target, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["x"], x)
        assert npz["x"].dtype == np.uint8
        assert str(npz["name"]) == "fashion_mnist"
        assert int(npz["k"]) == 3


def test_atomic_savez_refuses_object_arrays_and_empty_calls(tmp_path):
    with pytest.raises(TypeError, match="dtype object"):
        atomic_savez(tmp_path / "bad.npz", ok=np.zeros(2), bad=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="no arrays"):
        atomic_savez(tmp_path / "empty.npz")
    assert _listing(tmp_path) == []
