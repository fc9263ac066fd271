"""Random draws that XLA on CPU can fuse, with the same bits as JAX's default random-number generator.

On CPU, JAX lowers the Threefry-2x32 hash (behind ``jax.random`` with the default key implementation) as a loop of
five iterations over the whole array of counters, each reading and writing two ``uint32`` arrays; on GPU it uses the
straight-line form of the same twenty rounds, which XLA fuses into one pass. Within :func:`straight_line_threefry`,
the draws made through :func:`once` compute the hash in the straight-line form: the key's data go to a PRNG
implementation declared here with JAX's public ``jax.extend.random.define_prng_impl``, whose ``random_bits`` is the
same Threefry-2x32 of the same counters as JAX's (:func:`threefry2x32`, :func:`random_bits`), written in
``jax.numpy``; ``jax.random`` turns those bits into numbers as it does for its own keys. So every random number is
bit-for-bit the same (``tests/core/test_rng.py``, on every JAX version CI runs). Results can still differ in the last
float digits where XLA fuses the surrounding step differently.

Why: a training step draws a random number per weight (the guide's normal draws, dropout masks), so the hash is a
large share of a CPU step, and the loop form passes over the counters five times where the fused form passes once.
The gain needs each draw made once into its own buffer (:func:`once`, used by
:func:`bmrsparse.methods.guides.standard_normal` and the networks' dropout), else XLA fuses the straight-line hash
into every consumer of the draw. :class:`~bmrsparse.train.Trainer` uses it for networks without XLA convolutions
on CPU; not for XLA convolutions, whose step programs the straight-line form makes far slower to compile. The
measurements are in ``docs/performance.md``. Until issue 32 the same switch re-registered JAX's private lowering
rules for the ``threefry2x32`` primitive; this module uses public JAX only.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import numpy as np

#: Threefry-2x32's rotation distances, four rounds each, alternating (Salmon et al. 2011, "Parallel random numbers:
#: as easy as 1, 2, 3")
ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
#: Threefry's key-schedule parity constant
PARITY = 0x1BD11BDA

_straight = contextvars.ContextVar("bmrsparse_straight_threefry", default=False)


def threefry2x32(k1, k2, x1, x2):
    """The Threefry-2x32 hash (twenty rounds) of the counter pairs ``(x1, x2)`` under the key ``(k1, k2)``, all
    ``uint32``, in straight-line form: five groups of four rounds, each group followed by a key injection."""
    from jax import lax

    ks = (k1, k2, k1 ^ k2 ^ np.uint32(PARITY))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for group in range(5):
        for r in ROTATIONS[group % 2]:
            x1 = x1 + x2
            x2 = lax.shift_left(x2, np.uint32(r)) | lax.shift_right_logical(x2, np.uint32(32 - r))
            x2 = x1 ^ x2
        x1 = x1 + ks[(group + 1) % 3]
        x2 = x2 + ks[(group + 2) % 3] + np.uint32(group + 1)
    return x1, x2


def random_bits(key, bit_width: int, shape):
    """``bit_width`` random bits per element of ``shape`` from a Threefry key's data ``key`` (``uint32[2]``), as
    ``jax.random.bits`` gives them with ``jax_threefry_partitionable`` (JAX's default): the hash of the element's
    flat index as a 64-bit counter (high word, low word), its two output words xored for 8 to 32 bits, joined for
    64."""
    import jax.numpy as jnp
    from jax import lax

    n = math.prod(shape)
    if n >= 2**32:
        raise NotImplementedError("random bits for 2**32 or more elements")
    lo = lax.iota(np.uint32, n).reshape(shape)
    b1, b2 = threefry2x32(key[0], key[1], jnp.zeros(shape, np.uint32), lo)
    dtype = np.dtype(f"uint{bit_width}")
    if bit_width == 64:
        return (lax.convert_element_type(b1, dtype) << dtype.type(32)) | lax.convert_element_type(b2, dtype)
    return lax.convert_element_type(b1 ^ b2, dtype)


def _threefry_key(data):
    import jax

    return jax.random.wrap_key_data(data, impl="threefry2x32")


def _seed(seed):
    import jax

    return jax.random.key_data(jax.random.key(seed, impl="threefry2x32"))


def _split(key, shape):
    import jax

    return jax.random.key_data(jax.random.split(_threefry_key(key), shape))


def _fold_in(key, data):
    import jax

    return jax.random.key_data(jax.random.fold_in(_threefry_key(key), data))


_IMPL = None


def _impl():
    """The straight-line Threefry implementation: JAX's Threefry-2x32 for seeding, splitting and folding in, this
    module's :func:`random_bits` for the bits."""
    global _IMPL
    if _IMPL is None:
        from jax.extend.random import define_prng_impl

        _IMPL = define_prng_impl(key_shape=(2,), seed=_seed, split=_split, random_bits=random_bits,
                                 fold_in=_fold_in, name="threefry2x32_straight", tag="bmrfry")
    return _IMPL


def straight_key(key):
    """``key`` with the straight-line implementation when inside :func:`straight_line_threefry` and ``key`` is a
    Threefry key (old-style ``uint32[..., 2]`` data or a typed key) with JAX's default bit layout; else ``key``."""
    import jax
    import jax.numpy as jnp

    if not _straight.get() or not jax.config.jax_threefry_partitionable:
        return key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32":
            return key
        key = jax.random.key_data(key)
    return jax.random.wrap_key_data(key, impl=_impl())


def once(key, draw):
    """``draw(key)``, an array of ``key``'s random numbers, computed once into its own buffer on CPU.

    ``draw`` receives :func:`straight_key` of ``key``: the same numbers, in the straight-line form within
    :func:`straight_line_threefry`. XLA on CPU fuses cheap elementwise arithmetic into every consumer of its result
    and evaluates it once per consumer; for a random draw that arithmetic is the Threefry hash and its conversion,
    over every element. ``optimization_barrier`` does not prevent it (the CPU compiler removes barriers before
    fusion), but the branch of a conditional is a boundary fusion does not cross: ``draw`` is evaluated in a
    ``lax.cond`` whose predicate is always true yet unknown to the compiler (it depends on the key). On other
    backends, and under ``vmap`` over keys (JAX then evaluates both branches and selects), no different from
    ``draw(key)``.
    """
    import jax
    import jax.numpy as jnp

    fn = lambda: draw(straight_key(key))  # noqa: E731
    if jax.default_backend() != "cpu":
        return fn()
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    always = (data.reshape(-1)[0] | 1) != 0
    shape = jax.eval_shape(fn)
    return jax.lax.cond(always, fn, lambda: jnp.zeros(shape.shape, shape.dtype))


@contextlib.contextmanager
def straight_line_threefry():
    """Within the block, the draws of :func:`once` traced for CPU compute Threefry-2x32 in its straight-line form
    (the same bits)."""
    token = _straight.set(True)
    try:
        yield
    finally:
        _straight.reset(token)
