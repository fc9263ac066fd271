"""The straight-line Threefry on CPU (bmrsparse._rng): the same random bits as jax.random, through public JAX only,
the switch really switches, and training gives the same numbers with it. Run on the locked JAX (`make test`) and on
the newest (`make test-newest`)."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bmrsparse import _rng
from bmrsparse.bench import synthetic_dataset
from bmrsparse.settings import TrainingSettings
from bmrsparse.train import Trainer

from conftest import TINY_NETS


def _draws(key):
    """Each kind of draw the library makes through _rng.once, and a few more shapes and widths."""
    return (
        _rng.once(key, lambda k: jax.random.normal(k, (4097,))),
        _rng.once(key, lambda k: jax.random.bernoulli(k, 0.8, (33, 31))),
        _rng.once(key, lambda k: jax.random.uniform(k, (7, 5, 3))),
        _rng.once(key, lambda k: jax.random.bits(k, (3, 4), jnp.uint8)),
        _rng.once(key, lambda k: jax.random.bits(k, (1,), jnp.uint16)),
        _rng.once(key, lambda k: jax.random.bits(k, (), jnp.uint32)),
    )


def _lower(fun, *args, straight: bool):
    """``fun`` lowered for ``args`` with or without the switch; a fresh function each time (jit caches traces per
    function, and the switch acts when a program is traced)."""
    with _rng.straight_line_threefry() if straight else contextlib.nullcontext():
        return jax.jit(lambda *a: fun(*a)).lower(*args)


def _assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("make_key", [jax.random.PRNGKey, jax.random.key], ids=["uint32-key", "typed-key"])
def test_the_same_bits_with_either_route(make_key):
    for seed in (3, 2**31 + 7):
        key = make_key(seed)
        _assert_same(_lower(_draws, key, straight=False).compile()(key),
                     _lower(_draws, key, straight=True).compile()(key))
    # several keys at once (vmapped, as for several seeds)
    keys = jax.vmap(make_key)(jnp.arange(3))
    _assert_same(_lower(jax.vmap(_draws), keys, straight=False).compile()(keys),
                 _lower(jax.vmap(_draws), keys, straight=True).compile()(keys))


def test_random_bits_is_jaxs_threefry():
    key = jax.random.PRNGKey(5)
    for dtype in (jnp.uint8, jnp.uint16, jnp.uint32):
        for shape in ((), (1,), (6, 7), (2, 3, 5)):
            want = jax.random.bits(key, shape, dtype)
            got = _rng.random_bits(key, jnp.iinfo(dtype).bits, shape)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_the_switch_takes_effect_and_only_within_the_block():
    key = jax.random.PRNGKey(3)
    draw = lambda k: _rng.once(k, lambda kk: jax.random.normal(kk, (1000,)))  # noqa: E731
    before = _lower(draw, key, straight=False)
    straight = _lower(draw, key, straight=True)
    after = _lower(draw, key, straight=False)
    jaxpr = lambda: str(jax.make_jaxpr(lambda k: draw(k))(key))  # noqa: E731 (a fresh function: traced anew)
    with _rng.straight_line_threefry():
        assert "bmrfry" in jaxpr()  # this module's implementation draws the bits
    assert "bmrfry" not in jaxpr()
    if jax.default_backend() == "cpu":
        # JAX's CPU lowering of its Threefry is a loop; the straight-line form has none
        assert "while" in before.as_text() and "while" in after.as_text()
        assert "while" not in straight.as_text()


def test_other_keys_and_jaxs_other_bit_layout_keep_the_default_route():
    with _rng.straight_line_threefry():
        rbg = jax.random.key(1, impl="rbg")
        assert _rng.straight_key(rbg) is rbg
        key = jax.random.PRNGKey(2)
        assert "bmrfry" in str(_rng.straight_key(key).dtype)
        assert "bmrfry" in str(_rng.straight_key(jax.random.key(2)).dtype)  # a typed Threefry key too
        jax.config.update("jax_threefry_partitionable", False)
        try:
            assert _rng.straight_key(key) is key
        finally:
            jax.config.update("jax_threefry_partitionable", True)


@pytest.mark.parametrize("method", ["flat_map", "flat_ff"])
def test_training_gives_the_same_numbers_with_either_route(monkeypatch, method):
    """Flat-MAP's dropout masks and Flat-FF's normal draws (MLP, CPU) use the straight-line form: the same random
    numbers, but XLA fuses the step differently around them, so float rounding may differ in the last digits
    (measured with the earlier private lowering: 10 % of the Flat-MAP weights differed, by at most 3e-6, after 40
    steps of this tiny network)."""
    settings = TrainingSettings.from_mapping({"batch_size": 32, "net": TINY_NETS})
    ds = synthetic_dataset("fashion_mnist", "mlp", n_train=256, n_test=16)
    entered = []
    real = _rng.straight_line_threefry

    @contextlib.contextmanager
    def counting():
        entered.append(method)
        with real():
            yield

    def train():
        tr = Trainer(arch="mlp", method=method, dataset=ds, seeds=[0], settings=settings)
        state, _ = tr.train(tr.init(), 40, chunk_size=20, progress=False)
        return jax.tree.map(np.asarray, tr.params(state))

    monkeypatch.setattr(_rng, "straight_line_threefry", counting)
    used = train()
    assert entered == ([method] if jax.default_backend() == "cpu" else [])
    monkeypatch.setattr(_rng, "straight_line_threefry", contextlib.nullcontext)
    rolled = train()
    for k in rolled:
        np.testing.assert_allclose(used[k], rolled[k], rtol=0, atol=1e-4, err_msg=k)
