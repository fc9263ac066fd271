"""How bmrsparse.data reads a dataset: IDX files, CIFAR readers on tiny archives in the real format (checksums
before unpickling, the restricted unpickler, unsafe archives), prepared files and the preprocessing helpers."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bmrsparse import data
from bmrsparse.data import _sources, cifar, fashion_mnist
from bmrsparse.data._safe_pickle import safe_loads
from bmrsparse.io import DamagedFileError, atomic_savez
from cifar_archives import make_cifar_archive as _make_cifar_archive, pattern as _pattern, py2_pickle as _py2_pickle

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = tuple(fashion_mnist.FILES.values())
needs_fmnist = pytest.mark.skipif(
    not all((DEBIAN_FMNIST / f).is_file() for f in FMNIST_FILES),
    reason=f"real FashionMNIST not at {DEBIAN_FMNIST} (install it with `apt-get install dataset-fashion-mnist`)",
)


@pytest.fixture(autouse=True)
def _isolated_lookup(tmp_path_factory, monkeypatch):
    """No test sees the user's BMRSPARSE_DATA_DIR or download cache."""
    monkeypatch.delenv(_sources.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg_cache")))


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


# ----------------------------------------------------------------------------------------------------------
# IDX parsing
# ----------------------------------------------------------------------------------------------------------


def _idx(type_code, shape, payload):
    return bytes([0, 0, type_code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + payload


def test_parse_idx_reads_header_shape_and_big_endian_values():
    values = np.array([[1, -2, 70000], [3, 4, -5]], dtype=">i4")
    parsed = data.parse_idx(_idx(0x0C, (2, 3), values.tobytes()))
    assert parsed.shape == (2, 3) and parsed.dtype == np.int32
    np.testing.assert_array_equal(parsed, [[1, -2, 70000], [3, 4, -5]])
    images = data.parse_idx(_idx(0x08, (2, 2, 2), bytes(range(8))))
    assert images.dtype == np.uint8 and images[1, 0, 1] == 5


@pytest.mark.parametrize(
    "blob, match",
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "not an IDX file"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX element type"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 1), "header truncated"),
        (_idx(0x08, (2, 3), bytes(5)), r"announces shape \(2, 3\)"),
    ],
)
def test_parse_idx_rejects_bad_files(blob, match):
    with pytest.raises(data.DataError, match=match):
        data.parse_idx(blob, source="some.idx")


# ----------------------------------------------------------------------------------------------------------
# CIFAR: tiny archives in the exact real format
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_archive_prepared_with_exact_pixel_layout(tmp_path, name):
    spec = cifar.ARCHIVES[name]
    archive = _make_cifar_archive(tmp_path / "src" / spec.filename, name)
    out = tmp_path / "prepared" / f"{name}.npz"
    data.prepare_dataset(
        name, out, source_dir=tmp_path / "src", download=False, expected_md5={spec.filename: _md5(archive)}
    )
    ds = data.load_prepared(out)
    n_train = 4 * len(spec.train)
    assert ds.name == name and ds.num_classes == spec.num_classes
    assert ds.x_train.shape == (n_train, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (3, 32, 32, 3)
    # Every pixel of every image, in the order data_batch_1..5 then test_batch (train then test for CIFAR-100).
    n, r, c, ch = np.meshgrid(np.arange(n_train), np.arange(32), np.arange(32), np.arange(3), indexing="ij")
    np.testing.assert_array_equal(ds.x_train, _pattern(n, r, c, ch).astype(np.uint8))
    assert ds.x_train[1, 2, 3, 2] == _pattern(1, 2, 3, 2) == (7 + 22 + 15 + 202) % 256
    assert ds.x_test[0, 31, 0, 1] == _pattern(n_train, 31, 0, 1)
    expected_train = [(k * 7 + i) % spec.num_classes for k in range(len(spec.train)) for i in range(4)]
    assert ds.y_train.tolist() == expected_train and ds.y_train.dtype == np.int64
    k = len(spec.train)
    assert ds.y_test.tolist() == [(k * 7 + i) % spec.num_classes for i in range(3)]


def test_batch_to_images_maps_planes_to_channels():
    row = np.zeros((1, 3072), np.uint8)
    row[0, 2 * 1024 + 5 * 32 + 9] = 200  # blue plane, row 5, column 9
    images = data.batch_to_images(row)
    assert images.shape == (1, 32, 32, 3) and images[0, 5, 9, 2] == 200 and images.sum() == 200


def test_cifar_checksum_is_checked_before_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Exploit(f"touch {marker}"), protocol=2)
    archive = _make_cifar_archive(tmp_path / "cifar-10-python.tar.gz", "cifar10", replace={"data_batch_1": evil})
    out = tmp_path / "out.npz"
    with pytest.raises(data.ChecksumError) as info:
        data.prepare_dataset("cifar10", out, source_dir=tmp_path, download=False)  # published digest
    assert "c58f30108f718f92721af3b95e74349a" in str(info.value) and _md5(archive) in str(info.value)
    assert not isinstance(info.value, data.CorruptFileError)
    assert not marker.exists() and not out.exists()


class _Exploit:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _EvalExploit:
    def __reduce__(self):
        return (eval, ("1 + 1",))


class _PopenExploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


@pytest.mark.parametrize(
    "make, forbidden",
    [
        (lambda m: pickle.dumps(_Exploit(f"touch {m}"), protocol=2), f"{os.system.__module__}.system"),
        (lambda m: pickle.dumps(_EvalExploit(), protocol=2, fix_imports=False), "builtins.eval"),
        (lambda m: pickle.dumps(_EvalExploit(), protocol=2), "__builtin__.eval"),  # Python 2 spelling
        (lambda m: pickle.dumps(_PopenExploit(m), protocol=2, fix_imports=False), "subprocess.Popen"),
        # Hidden inside an otherwise well-formed batch dict, written like the real files.
        (lambda m: _py2_pickle({b"data": _Exploit(f"touch {m}"), b"labels": [0]}), f"{os.system.__module__}.system"),
    ],
)
def test_tampered_archive_with_matching_digest_is_refused_by_restricted_unpickler(tmp_path, make, forbidden):
    marker = tmp_path / "pwned"
    evil = make(marker)
    archive = _make_cifar_archive(tmp_path / "cifar-10-python.tar.gz", "cifar10", replace={"data_batch_3": evil})
    out = tmp_path / "out.npz"
    with pytest.raises(data.UnsafePickleError, match=f"refusing to unpickle the global {forbidden}"):
        data.prepare_dataset(
            "cifar10", out, source_dir=tmp_path, download=False,
            expected_md5={"cifar-10-python.tar.gz": _md5(archive)},
        )
    assert not marker.exists() and not out.exists()


def test_restricted_unpickler_admits_real_format_and_nothing_more():
    array = np.arange(3072 * 2, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    loaded = safe_loads(_py2_pickle({b"data": array, b"labels": [1, 2]}))
    assert set(loaded) == {b"data", b"labels"}
    np.testing.assert_array_equal(loaded[b"data"], array)
    # Python 3's own protocol-2 pickle of bytes goes through _codecs.encode, which the format never uses.
    with pytest.raises(data.UnsafePickleError, match="_codecs.encode"):
        safe_loads(pickle.dumps({b"data": 1}, protocol=2))
    # A persistent id is refused too.
    with pytest.raises(data.UnsafePickleError, match="persistent id"):
        safe_loads(b"\x80\x02U\x03pidQ.")


@pytest.mark.parametrize("bad_name", ["../evil", "/tmp/evil", "cifar-10-batches-py/../../evil"])
def test_archive_member_escaping_its_folder_is_refused(tmp_path, bad_name):
    info = tarfile.TarInfo(bad_name)
    info.size = 3
    archive = _make_cifar_archive(
        tmp_path / "cifar-10-python.tar.gz", "cifar10", extra=[(info, io.BytesIO(b"abc"))]
    )
    with pytest.raises(data.UnsafeArchiveError, match="outside the archive folder"):
        data.read_cifar("cifar10", archive, expected_md5=_md5(archive))


def test_archive_batch_that_is_a_link_is_refused(tmp_path):
    archive = tmp_path / "cifar-100-python.tar.gz"
    good = _make_cifar_archive(tmp_path / "good.tar.gz", "cifar100")
    with tarfile.open(good) as src, tarfile.open(archive, "w:gz") as dst:
        for member in src:
            if member.name == "cifar-100-python/test":
                link = tarfile.TarInfo(member.name)
                link.type = tarfile.SYMTYPE
                link.linkname = "/etc/passwd"
                dst.addfile(link)
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    with pytest.raises(data.UnsafeArchiveError, match="not a regular file"):
        data.read_cifar("cifar100", archive, expected_md5=_md5(archive))


def test_truncated_cifar_archive(tmp_path):
    full = _make_cifar_archive(tmp_path / "full.tar.gz", "cifar10", per_batch=50)
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "out" / "c.npz"
    # With the published digest: the checksum catches it.
    with pytest.raises(data.ChecksumError, match="checksum mismatch"):
        data.prepare_dataset("cifar10", out, source_dir=tmp_path, download=False)
    # Even when the digest is made to match, the reader reports a truncated archive, not a traceback from tarfile.
    with pytest.raises(data.CorruptFileError, match="truncated or corrupted"):
        data.prepare_dataset(
            "cifar10", out, source_dir=tmp_path, download=False,
            expected_md5={"cifar-10-python.tar.gz": _md5(archive)},
        )
    assert not out.parent.exists()


def test_cifar_archive_missing_a_batch_or_with_bad_batch(tmp_path):
    spec = cifar.ARCHIVES["cifar10"]
    short = _make_cifar_archive(tmp_path / "a.tar.gz", "cifar10")
    trimmed = tmp_path / "trimmed.tar.gz"
    with tarfile.open(short) as src, tarfile.open(trimmed, "w:gz") as dst:
        for member in src:
            if member.name != f"{spec.folder}/data_batch_4":
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    with pytest.raises(data.DataError, match="missing member.*data_batch_4"):
        data.read_cifar("cifar10", trimmed, expected_md5=_md5(trimmed))
    wrong = _py2_pickle({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]})
    bad = _make_cifar_archive(tmp_path / "b.tar.gz", "cifar10", replace={"test_batch": wrong})
    with pytest.raises(data.DataError, match="test_batch: b'data' must be a uint8 array"):
        data.read_cifar("cifar10", bad, expected_md5=_md5(bad))
    out_of_range = _py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    bad = _make_cifar_archive(tmp_path / "c.tar.gz", "cifar10", replace={"test_batch": out_of_range})
    with pytest.raises(data.DataError, match=r"labels outside 0\.\.9"):
        data.read_cifar("cifar10", bad, expected_md5=_md5(bad))


# ----------------------------------------------------------------------------------------------------------
# Prepared files and preprocessing
# ----------------------------------------------------------------------------------------------------------


def test_load_prepared_rejects_damaged_or_foreign_files(tmp_path):
    archive = _make_cifar_archive(tmp_path / "src" / "cifar-10-python.tar.gz", "cifar10")
    good = tmp_path / "good.npz"
    data.prepare_dataset(
        "cifar10", good, source_dir=tmp_path / "src", download=False,
        expected_md5={"cifar-10-python.tar.gz": _md5(archive)},
    )
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ValueError, match="rerun prepare_dataset"):
        data.load_prepared(truncated)
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        data.load_prepared(plain)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x_train=np.zeros((2, 32, 32, 3), np.uint8))  # no digest: refused before its keys are read
    with pytest.raises(DamagedFileError, match="no __sha256__ digest.*rerun prepare_dataset"):
        data.load_prepared(foreign)
    atomic_savez(foreign, x_train=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="missing y_train"):
        data.load_prepared(foreign)


def test_channel_stats_match_float64_reference():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(2500, 8, 8, 3), dtype=np.uint8)  # more images than one chunk
    x[..., 2] //= 4
    mean, std = data.channel_stats(x)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == (3,)
    reference = x.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, reference.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, reference.std(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="uint8 images"):
        data.channel_stats(x.astype(np.float32))


def test_standardise_gives_zero_mean_unit_std_per_channel():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(300, 4, 4, 3), dtype=np.uint8)
    mean, std = data.channel_stats(x)
    z = data.standardise(x, mean, std)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z.reshape(-1, 3).mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.reshape(-1, 3).std(axis=0), 1.0, atol=1e-4)
    assert z[0, 0, 0, 1] == pytest.approx((float(x[0, 0, 0, 1]) - mean[1]) / std[1], rel=1e-6)
    with pytest.raises(ValueError, match="3 channels"):
        data.standardise(x, mean[:1], std[:1])
    with pytest.raises(ValueError, match="std must be positive"):
        data.standardise(x, mean, np.array([1.0, 0.0, 1.0]))


def test_pad_to_zero_pads_symmetrically():
    x = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28, 1) % 250 + 1
    padded = data.pad_to(x, 32)
    assert padded.shape == (2, 32, 32, 1) and padded.dtype == np.uint8
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], x)
    assert padded.sum() == x.astype(np.int64).sum()
    assert padded[:, :2].max() == padded[:, 30:].max() == padded[:, :, :2].max() == padded[:, :, 30:].max() == 0
    odd = data.pad_to(np.ones((29, 30, 3), np.float32), 32)  # a single image, odd margin
    assert odd.shape == (32, 32, 3)
    assert odd[0].sum() == 0 and odd[1:30, 1:31].min() == 1 and odd[30:].sum() == 0
    same = np.ones((1, 32, 32, 3))
    assert data.pad_to(same) is same
    with pytest.raises(ValueError, match="larger than 32x32"):
        data.pad_to(np.ones((1, 33, 32, 1)))
