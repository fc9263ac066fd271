"""A CPU lowering of JAX's default random-number generator that XLA can fuse, with the same bits.

On CPU, JAX lowers the Threefry-2x32 hash (behind ``jax.random`` with the default key implementation) as a loop of
five iterations over the whole array of counters, each reading and writing two ``uint32`` arrays; on GPU it uses the
straight-line form of the same twenty rounds, which XLA fuses into one pass. :func:`straight_line_threefry` lowers
the hash in the straight-line form on CPU while a program is lowered: the same function of the same inputs, so every
random number is bit-for-bit the same (``tests/core/test_rng.py``). Results can still differ in the last float digits
where XLA fuses the surrounding step differently (docs/design-notes.md).

Why: a training step draws a random number per weight (the guide's normal draws, dropout masks), so the hash is a
large share of a CPU step, and the loop form passes over the counters five times where the fused form passes once.
The gain needs each draw made once into its own buffer (:func:`once`, used by
:func:`bmrsparse.methods.guides.standard_normal`), else XLA fuses the straight-line hash into every consumer of the
draw. :class:`~bmrsparse.train.Trainer` uses it for networks without convolutions on CPU; not for convolutions,
whose step programs the straight-line form makes far slower to compile. The measurements are in
``docs/performance.md``. The switch uses private JAX names; where a JAX version lacks them it does nothing (the
default lowering: the same numbers).
"""

from __future__ import annotations

import contextlib


def once(key, fn):
    """``fn()``, an array computed from ``key``'s random bits, computed once into its own buffer on CPU.

    XLA on CPU fuses cheap elementwise arithmetic into every consumer of its result and evaluates it once per
    consumer; for a random draw that arithmetic is the Threefry hash (straight-line form, all integer adds, rotations
    and xors) and its conversion, over every element. ``optimization_barrier`` does not prevent it (the CPU compiler
    removes barriers before fusion), but the branch of a conditional is a boundary fusion does not cross: ``fn`` is
    evaluated in a ``lax.cond`` whose predicate is always true yet unknown to the compiler (it depends on the key).
    The same numbers as ``fn()``. On other backends, and under ``vmap`` over keys (JAX then evaluates both branches
    and selects), no different from ``fn()``.
    """
    import jax
    import jax.numpy as jnp

    if jax.default_backend() != "cpu":
        return fn()
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    always = (data.reshape(-1)[0] | 1) != 0
    shape = jax.eval_shape(fn)
    return jax.lax.cond(always, fn, lambda: jnp.zeros(shape.shape, shape.dtype))


def _rules():
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as tf

        return mlir, tf.threefry2x32_p, tf._threefry2x32_lowering_rule, tf._threefry2x32_cpu_lowering_rule
    except (ImportError, AttributeError):  # another JAX version: keep its lowering
        return None


def available() -> bool:
    """Whether this JAX has the names the switch needs."""
    return _rules() is not None


@contextlib.contextmanager
def straight_line_threefry():
    """Within the block, programs lowered for CPU compute Threefry-2x32 in its straight-line form (same bits)."""
    rules = _rules()
    if rules is None:
        yield
        return
    import jax

    mlir, prim, straight, rolled = rules
    # JAX caches the lowering of nested jitted functions (jax.random's among them): drop those made with the other
    # rule on the way in and out, so that this block, and code after it, lower with the rule meant for them
    jax.clear_caches()
    mlir.register_lowering(prim, straight, platform="cpu")
    try:
        yield
    finally:
        mlir.register_lowering(prim, rolled, platform="cpu")
        jax.clear_caches()
