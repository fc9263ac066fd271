"""Verified intermediate files (bmrsparse.io): every file a job writes for another job to read carries a SHA-256,
and a file cut short, with a flipped byte, or without its digest stops the reader with DamagedFileError, which
names the file, says how it is damaged and gives the command that remakes it."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest

from bmrsparse import data, io
from bmrsparse.state import read_state, save_state
from bmrsparse.workflow import tables
from bmrsparse.workflow.provenance import provenance_table

from conftest import TINY_NETS


@pytest.fixture(autouse=True)
def _no_recorded_command(monkeypatch):
    monkeypatch.delenv(io.COMMAND_ENV, raising=False)
    monkeypatch.delenv(io.CACHE_ENV, raising=False)


def _cut(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


def _flip(path, position):
    raw = bytearray(path.read_bytes())
    raw[position] ^= 0x01
    path.write_bytes(bytes(raw))


def _arrays():
    rng = np.random.default_rng(0)
    return {"w": rng.normal(size=(7, 5)).astype(np.float32), "k": np.arange(6, dtype=np.int64),
            "name": np.array("fashion_mnist")}


# ----------------------------------------------------------------------------------------------- the mechanism
def test_npz_round_trip_and_digest_member(tmp_path):
    target = tmp_path / "a.npz"
    io.atomic_savez(target, **_arrays())
    loaded = io.load_npz(target)
    assert sorted(loaded) == ["k", "name", "w"]
    for key, value in _arrays().items():
        np.testing.assert_array_equal(loaded[key], value)
    with np.load(target) as z:
        assert str(z[io.DIGEST_MEMBER]) == io.arrays_digest(_arrays())
    with pytest.raises(ValueError, match="reserved"):
        io.atomic_savez(tmp_path / "b.npz", **{io.DIGEST_MEMBER: np.zeros(1)})


def test_npz_every_cut_is_refused(tmp_path):
    good = tmp_path / "good.npz"
    io.atomic_savez(good, **_arrays())
    raw = good.read_bytes()
    damaged = tmp_path / "damaged.npz"
    for keep in range(0, len(raw), 7):
        damaged.write_bytes(raw[:keep])
        with pytest.raises(io.DamagedFileError, match="truncated") as info:
            io.load_npz(damaged)
        assert str(damaged) in str(info.value)


def test_npz_no_flipped_byte_goes_unnoticed(tmp_path):
    """A flip anywhere either raises DamagedFileError or leaves every array exactly as written (a flip in a zip
    field that carries no data, e.g. a timestamp): damaged data never reach the reader."""
    good = tmp_path / "good.npz"
    io.atomic_savez(good, **_arrays())
    raw = good.read_bytes()
    damaged = tmp_path / "damaged.npz"
    refused = 0
    for position in range(len(raw)):
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        damaged.write_bytes(bytes(flipped))
        try:
            loaded = io.load_npz(damaged)
        except io.DamagedFileError:
            refused += 1
            continue
        assert sorted(loaded) == ["k", "name", "w"], position
        for key, value in _arrays().items():
            np.testing.assert_array_equal(loaded[key], value, err_msg=f"flip at byte {position}")
            assert loaded[key].dtype == value.dtype
    assert refused > len(raw) * 0.8  # the payload and its headers are most of the file


def test_npz_without_digest_is_refused(tmp_path):
    old = tmp_path / "old.npz"
    np.savez(old, **_arrays())  # what bmrsparse wrote before digests, or another program
    with pytest.raises(io.DamagedFileError, match="no __sha256__ digest"):
        io.load_npz(old)
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros(3))
    with pytest.raises(io.DamagedFileError, match="not an .npz archive"):
        io.load_npz(plain)
    with pytest.raises(FileNotFoundError):
        io.load_npz(tmp_path / "missing.npz")


def test_verified_text_writes_a_sha256sum_file(tmp_path):
    import hashlib

    target = tmp_path / "m.csv"
    io.atomic_write_verified(target, "a,b\n1,2\n")
    digest = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert (tmp_path / "m.csv.sha256").read_text() == f"{digest}  m.csv\n"
    assert io.read_verified(target) == b"a,b\n1,2\n"
    assert io.read_csv(target).to_dict("list") == {"a": [1], "b": [2]}


def test_csv_every_cut_and_every_flip_is_refused(tmp_path):
    target = tmp_path / "m.csv"
    text = pd.DataFrame({"epoch": [0, 1, 2], "acc": [0.1, 0.5, 0.75]}).to_csv(index=False)
    io.atomic_write_verified(target, text)
    raw = target.read_bytes()
    for keep in range(len(raw)):
        target.write_bytes(raw[:keep])
        with pytest.raises(io.DamagedFileError, match="digest mismatch.*cut short or changed"):
            io.read_csv(target)
    for position in range(len(raw)):
        target.write_bytes(raw)
        _flip(target, position)
        with pytest.raises(io.DamagedFileError, match="digest mismatch"):
            io.read_csv(target)


def test_csv_without_or_with_bad_digest_file(tmp_path):
    target = tmp_path / "m.csv"
    target.write_text("a\n1\n")  # a plain CSV, no digest file
    with pytest.raises(io.DamagedFileError, match=r"digest file .*m.csv.sha256 is missing"):
        io.read_csv(target)
    (tmp_path / "m.csv.sha256").write_text("not a digest\n")
    with pytest.raises(io.DamagedFileError, match="does not hold a sha256"):
        io.read_csv(target)


# ------------------------------------------------------------------------------------------ remake instructions
def test_workflow_output_names_rm_and_the_runs_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "results" / "warmup" / "fashion_mnist" / "mlp" / "seed0" / "metrics.csv"
    io.atomic_write_verified(target, "a\n1\n")
    _cut(target, 2)
    with pytest.raises(io.DamagedFileError) as info:
        io.read_csv(target)
    message = str(info.value)
    rel = "results/warmup/fashion_mnist/mlp/seed0/metrics.csv"
    assert message.startswith(f"{target} is damaged (digest mismatch")
    assert f"rm -f {rel} {rel}.sha256 && snakemake --cores all {rel}" in message
    assert "--configfile/--profile options of your run" in message
    monkeypatch.setenv(io.COMMAND_ENV, "snakemake --cores 2 --configfile config/test.yaml")
    with pytest.raises(io.DamagedFileError) as info:
        io.read_csv(target)
    assert f"with: rm -f {rel} {rel}.sha256 && snakemake --cores 2 --configfile config/test.yaml" in str(info.value)


def test_link_into_the_between_workflow_cache_names_the_entry(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv(io.CACHE_ENV, str(cache))
    entry = cache / "0123abcd_posterior.npz"
    io.atomic_savez(entry, **_arrays())
    _flip(entry, 100)
    work = tmp_path / "work"
    link = work / "results" / "warmup" / "fashion_mnist" / "mlp" / "seed0" / "posterior.npz"
    link.parent.mkdir(parents=True)
    os.symlink(entry, link)
    monkeypatch.chdir(work)
    with pytest.raises(io.DamagedFileError) as info:
        io.load_npz(link)
    message = str(info.value)
    rel = "results/warmup/fashion_mnist/mlp/seed0/posterior.npz"
    assert f"link to {entry} in Snakemake's between-workflow cache ({cache})" in message
    assert f"rm -f {rel} {entry} && snakemake --cores all {rel}" in message


def test_file_outside_the_workflow_names_its_producer(tmp_path):
    target = tmp_path / "prepared.npz"
    np.savez(target, x=np.zeros(2))
    with pytest.raises(io.DamagedFileError, match=r"rerun prepare_dataset \(bmrsparse.data.prepare_dataset\)"):
        data.load_prepared(target)


# ------------------------------------------------------------------------ each kind of file, through its reader
def _damage(path, how):
    if how == "cut":
        _cut(path, path.stat().st_size // 2)
    else:
        _flip(path, path.stat().st_size // 2)


def _prepared(path):
    x = np.arange(4 * 28 * 28, dtype=np.int64).astype(np.uint8).reshape(4, 28, 28, 1)
    io.atomic_savez(path, x_train=x, y_train=np.arange(4), x_test=x[:2], y_test=np.arange(2),
                    name=np.array("fashion_mnist"), num_classes=np.array(10, np.int64))
    return data.load_prepared(path)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _assert_clear(info, rel):
    message = str(info.value)
    assert rel in message and "is damaged (" in message
    assert f"rm -f {rel}" in message and f"snakemake --cores all {rel}" in message


@pytest.mark.parametrize("how", ["cut", "flip"])
def test_prepared_data(workdir, how):
    rel = "results/data/fashion_mnist.npz"
    ds = _prepared(workdir / rel)
    assert ds.x_train.shape == (4, 28, 28, 1)
    _damage(workdir / rel, how)
    with pytest.raises(io.DamagedFileError) as info:
        data.load_prepared(rel)
    _assert_clear(info, rel)


@pytest.fixture(scope="module")
def trainer():
    from bmrsparse.settings import TrainingSettings
    from bmrsparse.train import Trainer

    x = np.zeros((8, 28, 28, 1), np.uint8)
    y = np.arange(8) % 10
    ds = data.Dataset("fashion_mnist", x, y, x, y, 10)
    return Trainer(arch="mlp", method="flat_ff", dataset=ds, seeds=[0],
                   settings=TrainingSettings.from_mapping({"net": TINY_NETS, "batch_size": 4}))


@pytest.mark.parametrize("name", ["posterior.npz", "epoch1/posterior.npz", "posterior.npz.ckpt.npz"])
@pytest.mark.parametrize("how", ["cut", "flip"])
def test_posteriors_epoch_states_and_checkpoints(workdir, trainer, name, how):
    rel = f"results/train/fashion_mnist/mlp/flat_ff/seed0/{name}"
    state = trainer.init()
    save_state(trainer, state, workdir / rel, extra={"note": "x"})
    loaded, head = read_state(trainer, rel)
    assert head["extra"] == {"note": "x"} and loaded.step == state.step
    _damage(workdir / rel, how)
    with pytest.raises(io.DamagedFileError) as info:
        read_state(trainer, rel)
    _assert_clear(info, rel)


def _metrics_text():
    from bmrsparse.metrics import METRIC_COLUMNS

    row = {c: 0 for c in METRIC_COLUMNS}
    row.update(dataset="fashion_mnist", arch="mlp", method="flat_ff", acc=0.5)
    return pd.DataFrame([row]).assign(library="abc").to_csv(index=False)


@pytest.mark.parametrize("how", ["cut", "flip"])
def test_per_job_metrics_read_by_the_tables_and_provenance(workdir, how):
    rel = "results/warmup/fashion_mnist/mlp/seed0/metrics.csv"
    io.atomic_write_verified(workdir / rel, _metrics_text())
    assert len(tables.read_metrics(rel)) == 1 and len(provenance_table([rel])) == 1
    _damage(workdir / rel, how)
    for read in (tables.read_metrics, lambda p: provenance_table([p])):
        with pytest.raises(io.DamagedFileError) as info:
            read(rel)
        _assert_clear(info, rel)


@pytest.mark.parametrize("how", ["cut", "flip"])
def test_sparsity_curves(workdir, how):
    from bmrsparse.sparsity import CURVE_COLUMNS

    rel = "results/sparsity/fashion_mnist/mlp/seed0.csv"
    curve = pd.DataFrame([{c: 0 for c in CURVE_COLUMNS}] * 3)
    io.atomic_write_verified(workdir / rel, curve.to_csv(index=False))
    assert io.read_csv(rel).shape == (3, len(CURVE_COLUMNS))
    _damage(workdir / rel, how)
    with pytest.raises(io.DamagedFileError) as info:
        io.read_csv(rel)
    _assert_clear(info, rel)


# ---------------------------------------------------------------------- a damaged entry of the between-workflow cache
def _snakemake_in(workdir, cache, *args):
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != io.COMMAND_ENV}
    env.update({io.CACHE_ENV: str(cache), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"})
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--cache", "--configfile", "config/test.yaml",
           "override.yaml", "--", *args]
    return subprocess.run(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)


@pytest.mark.slow
def test_damaged_cache_entry_stops_the_reader_of_another_checkout(tmp_path):
    """The warm-up posterior in Snakemake's between-workflow cache (--cache) is cut short or has a flipped byte;
    a second checkout that takes it from the cache stops in the job that reads it, with DamagedFileError naming the
    file and the cache entry, never with a raw BadZipFile."""
    from conftest import _fmnist_source, copy_workflow

    if _fmnist_source() is None:
        pytest.skip("needs FashionMNIST offline (Debian's dataset-fashion-mnist or BMRSPARSE_DATA_DIR)")
    override = "archs: [mlp]\nmethods: [flat_ff]\n"
    warmup = "results/warmup/fashion_mnist/mlp/lr0.005/seed0/posterior.npz"
    reader = "results/train/fashion_mnist/mlp/flat_ff/seed0/metrics.csv"  # train_continue reads the warm-up
    cache = tmp_path / "cache"
    cache.mkdir()
    first = copy_workflow(tmp_path / "first", override)
    run = _snakemake_in(first, cache, warmup)
    assert run.returncode == 0, run.stdout[-4000:]
    entry = (first / warmup).resolve()
    assert (first / warmup).is_symlink() and entry.parent == cache.resolve(), run.stdout[-3000:]
    good = entry.read_bytes()
    for how in ("cut", "flip"):
        entry.chmod(0o644)  # Snakemake stores cache entries read-only
        entry.write_bytes(good)
        _damage(entry, how)
        second = copy_workflow(tmp_path / f"second_{how}", override)
        run = _snakemake_in(second, cache, reader)
        assert run.returncode != 0, f"a run used the damaged cache entry ({how}):\n{run.stdout[-4000:]}"
        assert f"Symlinking output file {warmup} from cache." in run.stdout, run.stdout[-4000:]
        log = (second / "logs/train_continue/fashion_mnist/mlp/flat_ff/seed0.log").read_text()
        # the job's traceback ends in DamagedFileError and holds no traceback of zipfile's own error
        assert not re.search(r"^zipfile\.BadZipFile|raise BadZipFile", log, flags=re.M), log[-3000:]
        assert "bmrsparse.io.DamagedFileError: " in log, log[-3000:]
        message = log[log.index("bmrsparse.io.DamagedFileError: "):]
        assert f"{warmup} is damaged (" in message, message[:2000]
        assert f"link to {entry} in Snakemake's between-workflow cache" in message, message[:2000]
        assert f"rm -f {warmup}" in message and str(entry) in message.split("rm -f", 1)[1], message[:2000]
        assert not (second / reader).exists()
