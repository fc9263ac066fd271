"""Where bmrsparse.data finds a dataset: real FashionMNIST (Debian's copy), the lookup order, checksums, offline
messages, the registry, and verified downloads (a local http server stands in for the web)."""

from __future__ import annotations

import dataclasses

import gzip
import hashlib
import http.server
import os
import shutil
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from bmrsparse import data
from bmrsparse.data import _sources, cifar, fashion_mnist
from cifar_archives import make_cifar_archive as _make_cifar_archive

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
# FashionMNIST, real data
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fmnist_npz(tmp_path_factory):
    if not all((DEBIAN_FMNIST / f).is_file() for f in FMNIST_FILES):
        pytest.skip(f"real FashionMNIST not at {DEBIAN_FMNIST} (apt-get install dataset-fashion-mnist)")
    out = tmp_path_factory.mktemp("prepared") / "fashion_mnist.npz"
    saved = os.environ.pop(_sources.DATA_DIR_ENV, None)
    try:
        data.prepare_dataset("fashion_mnist", out, download=False)
    finally:
        if saved is not None:
            os.environ[_sources.DATA_DIR_ENV] = saved
    return out


@needs_fmnist
def test_fashion_mnist_prepared_from_debian_copy(fmnist_npz):
    ds = data.load_prepared(fmnist_npz)
    assert ds.name == "fashion_mnist" and ds.num_classes == 10 == data.NUM_CLASSES["fashion_mnist"]
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (10000, 28, 28, 1) and ds.x_test.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.y_train.min() == 0 and ds.y_train.max() == 9
    np.testing.assert_array_equal(np.bincount(ds.y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.full(10, 1000))
    # The widely quoted FashionMNIST statistics: mean 0.2860 and std 0.3530 of [0, 1] pixels.
    mean, std = data.channel_stats(ds.x_train)
    assert mean.shape == std.shape == (1,) and mean.dtype == np.float32
    assert mean[0] / 255 == pytest.approx(0.2860, abs=1e-4)
    assert std[0] / 255 == pytest.approx(0.3530, abs=1e-4)
    # First training image of the original file: an ankle boot (class 9), a T-shirt (0) next.
    assert ds.y_train[:2].tolist() == [9, 0]


def _copy_fmnist(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for f in FMNIST_FILES:
        shutil.copyfile(DEBIAN_FMNIST / f, folder / f)
    return folder


@needs_fmnist
def test_corrupted_fashion_mnist_file_fails_checksum_and_writes_nothing(tmp_path):
    src = _copy_fmnist(tmp_path / "src")
    labels = src / "train-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[1000] ^= 0x01  # one label changes class: still a valid IDX file
    labels.write_bytes(gzip.compress(bytes(content)))
    out_dir = tmp_path / "out"
    with pytest.raises(data.ChecksumError) as info:
        data.prepare_dataset("fashion_mnist", out_dir / "fmnist.npz", source_dir=src, download=False)
    message = str(info.value)
    expected = fashion_mnist.MD5["train-labels-idx1-ubyte.gz"]
    actual = hashlib.md5(bytes(content)).hexdigest()
    assert str(labels) in message and expected in message and actual in message
    assert "re-download" in message and "source_dir" in message
    assert (info.value.expected, info.value.actual) == (expected, actual)
    assert not out_dir.exists() or _listing(out_dir) == []


@needs_fmnist
def test_truncated_fashion_mnist_gzip_gives_clear_error(tmp_path):
    src = _copy_fmnist(tmp_path / "src")
    target = src / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    out = tmp_path / "out" / "fmnist.npz"
    with pytest.raises(data.CorruptFileError, match="truncated or corrupted") as info:
        data.prepare_dataset("fashion_mnist", out, source_dir=src, download=False)
    assert str(target) in str(info.value)
    assert isinstance(info.value, data.ChecksumError)
    assert not out.exists() and not out.parent.exists()


@needs_fmnist
def test_env_var_folder_is_searched_before_the_debian_copy(tmp_path, monkeypatch):
    # A damaged copy under $BMRSPARSE_DATA_DIR/fashion-mnist/ must be the one read (and rejected).
    sub = _copy_fmnist(tmp_path / "env" / "fashion-mnist")
    target = sub / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"\x03"))
    monkeypatch.setenv(_sources.DATA_DIR_ENV, str(tmp_path / "env"))
    with pytest.raises(data.ChecksumError, match=str(target)):
        data.prepare_dataset("fashion_mnist", tmp_path / "x.npz", download=False)


def test_lookup_order(tmp_path, monkeypatch):
    monkeypatch.setenv(_sources.DATA_DIR_ENV, str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dirs = data.candidate_dirs("fashion_mnist", tmp_path / "src")
    assert dirs == [
        tmp_path / "src" / "fashion_mnist",
        tmp_path / "src" / "fashion-mnist",
        tmp_path / "src",
        tmp_path / "env" / "fashion_mnist",
        tmp_path / "env" / "fashion-mnist",
        tmp_path / "env",
        Path("/usr/share/datasets/fashion-mnist"),
        tmp_path / "cache" / "bmrsparse" / "fashion_mnist",
    ]


def _without_local_copy(monkeypatch, name):
    """Dataset ``name`` as declared but without its system-installed copy."""
    info = dataclasses.replace(data.DATASETS[name], local_copies=())
    monkeypatch.setitem(data.DATASETS._items, name, info)


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10", "cifar100"])
def test_offline_without_local_copy_says_how_to_point_at_one(tmp_path, monkeypatch, name):
    _without_local_copy(monkeypatch, name)
    out = tmp_path / "out.npz"
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.prepare_dataset(name, out, source_dir=tmp_path / "empty", download=False)
    message = str(info.value)
    for hint in ("source_dir", "BMRSPARSE_DATA_DIR", "data_dir", str(tmp_path / "empty")):
        assert hint in message
    expected_files = FMNIST_FILES if name == "fashion_mnist" else (cifar.ARCHIVES[name].filename,)
    for f in expected_files:
        assert f in message
    assert not out.exists() and not (tmp_path / "empty").exists()


def test_registry_declares_the_papers_datasets():
    assert list(data.DATASETS) == ["fashion_mnist", "cifar10", "cifar100"]
    fm = data.get_dataset("fashion_mnist")
    assert (fm.label, fm.shape, fm.num_classes, fm.figure) == ("FashionMNIST", (28, 28, 1), 10, "fig1")
    assert fm.checksums == fashion_mnist.MD5 and "/usr/share/datasets/fashion-mnist" in fm.local_copies
    assert data.get_dataset("cifar100").num_classes == 100 == data.NUM_CLASSES["cifar100"]
    with pytest.raises(ValueError, match="two datasets are named 'cifar10'"):
        data.register(dataclasses.replace(data.DATASETS["cifar10"], label="other"))
    with pytest.raises(ValueError, match="shape must be"):
        data.DatasetInfo(name="bad", label="Bad", shape=(28, 28), num_classes=10, read=print)


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="'mnist'.*fashion_mnist, cifar10, cifar100"):
        data.prepare_dataset("mnist", "unused.npz", download=False)


# ----------------------------------------------------------------------------------------------------------
# Downloading through pooch: an http.server on 127.0.0.1 stands in for the web; nothing leaves the machine
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def http_mirror(tmp_path, monkeypatch):
    """A folder served over HTTP on 127.0.0.1 (a thread); yields ``(folder, base_url, requests_log)``."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(_sources, "RETRIES", 0)  # pooch sleeps between retries; one attempt per mirror here
    folder = tmp_path / "mirror"
    folder.mkdir()
    served = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_request(self, code="-", size="-"):
            served.append(self.path)

        def log_message(self, fmt, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_tries_mirrors_verifies_and_keeps_only_a_good_copy(tmp_path, monkeypatch, http_mirror):
    folder, url, served = http_mirror
    archive = _make_cifar_archive(folder / "cifar-10-python.tar.gz", "cifar10")
    monkeypatch.setattr(cifar, "MIRRORS", (url + "nowhere/", url))  # the first mirror answers 404
    dest = tmp_path / "data"
    out = tmp_path / "cifar10.npz"
    data.prepare_dataset(
        "cifar10", out, source_dir=dest, expected_md5={"cifar-10-python.tar.gz": _md5(archive)}
    )
    assert served == ["/nowhere/cifar-10-python.tar.gz", "/cifar-10-python.tar.gz"]
    assert _listing(dest) == ["cifar-10-python.tar.gz"]  # kept in source_dir, no partial file left
    assert _md5(dest / "cifar-10-python.tar.gz") == _md5(archive)
    assert data.load_prepared(out).x_train.shape == (20, 32, 32, 3)
    # A second run finds the kept copy and downloads nothing.
    data.prepare_dataset("cifar10", out, source_dir=dest, expected_md5={"cifar-10-python.tar.gz": _md5(archive)})
    assert len(served) == 2


def test_download_with_wrong_digest_keeps_nothing(tmp_path, monkeypatch, http_mirror):
    folder, url, served = http_mirror
    archive = _make_cifar_archive(folder / "cifar-10-python.tar.gz", "cifar10")
    monkeypatch.setattr(cifar, "MIRRORS", (url,))
    out = tmp_path / "cifar10.npz"
    with pytest.raises(data.ChecksumError) as info:
        data.prepare_dataset("cifar10", out)  # published digest; downloads go to the (temporary) cache
    message = str(info.value)
    assert "c58f30108f718f92721af3b95e74349a" in message and _md5(archive) in message
    assert "Nothing was kept" in message and url in message
    assert served == ["/cifar-10-python.tar.gz"]
    assert not out.exists()
    assert not data.cache_dir("cifar10").exists()


def test_download_failure_is_reported_as_unavailable_with_hints(tmp_path, monkeypatch, http_mirror):
    _, url, _ = http_mirror
    monkeypatch.setattr(cifar, "MIRRORS", (url + "nowhere/",))
    with pytest.raises(data.DatasetUnavailableError, match="downloading failed.*404.*source_dir.*BMRSPARSE_DATA_DIR"):
        data.prepare_dataset("cifar100", tmp_path / "c.npz", source_dir=tmp_path / "dl")
    assert not (tmp_path / "c.npz").exists() and not (tmp_path / "dl").exists()


@needs_fmnist
def test_fashion_mnist_download_is_verified_twice(tmp_path, monkeypatch, http_mirror):
    # Debian's re-gzipped files stand in for the canonical ones: pooch checks the .gz bytes against GZ_MD5 (here
    # set to the served files' digests), the reader the decompressed content against MD5 (unchanged).
    folder, url, served = http_mirror
    _copy_fmnist(folder)
    monkeypatch.setattr(fashion_mnist, "MIRRORS", (url,))
    monkeypatch.setattr(fashion_mnist, "GZ_MD5", {f: _md5(folder / f) for f in FMNIST_FILES})
    _without_local_copy(monkeypatch, "fashion_mnist")
    out = tmp_path / "fm.npz"
    data.prepare_dataset("fashion_mnist", out)
    assert sorted(served) == sorted(f"/{f}" for f in FMNIST_FILES)
    assert sorted(_listing(data.cache_dir("fashion_mnist"))) == sorted(FMNIST_FILES)
    assert data.load_prepared(out).x_test.shape == (10000, 28, 28, 1)


