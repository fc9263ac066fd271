"""Checks of a user's numbers at the library's front door: a :class:`ValueError` that names the argument and the
problem (non-finite values, non-positive scales, shapes that do not fit) instead of a NaN result.

Only concrete values are checked. Inside ``jax.jit``, ``jax.vmap`` or ``jax.grad`` an argument is a tracer whose
numbers do not exist yet; its shape is known and checked, its values are not (a value check there would need a host
callback in the compiled program). :func:`traced` tells the two apart.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["traced", "as_numbers", "check_finite", "check_positive", "check_scalar", "check_count", "where"]


def traced(value) -> bool:
    """True when ``value`` is a JAX tracer (its numbers are only known when the compiled program runs)."""
    try:
        import jax
    except ImportError:  # pragma: no cover - numpy-only use
        return False
    return isinstance(value, jax.core.Tracer)


def where(mask: np.ndarray) -> str:
    """``"at index (i, j)"`` of the first True of ``mask`` (``""`` for a scalar)."""
    if mask.ndim == 0:
        return ""
    index = tuple(int(i) for i in np.argwhere(mask)[0])
    return f" at index {index if len(index) != 1 else index[0]}"


def as_numbers(name: str, value) -> np.ndarray:
    """``value`` as a numpy array of real numbers (a host copy of a JAX array); refuses text, objects, complex."""
    try:
        array = np.asarray(value)
    except Exception as e:  # noqa: BLE001  ragged lists and the like
        raise ValueError(f"{name} must be an array of numbers ({type(e).__name__}: {e})") from None
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name} must be an array of real numbers, got dtype {array.dtype}")
    return array


def check_finite(name: str, value) -> np.ndarray:
    """``value`` as numbers; ValueError naming ``name`` when any is NaN or infinite."""
    array = as_numbers(name, value)
    bad = ~np.isfinite(array)
    if bad.any():
        first = array[bad].ravel()[0]
        raise ValueError(f"{name} has {int(bad.sum())} non-finite value(s) (NaN or infinity), e.g. {first}{where(bad)}")
    return array


def check_positive(name: str, value, *, allow_zero: bool = False, what: str = "a standard deviation") -> np.ndarray:
    """``value`` as finite numbers, each > 0 (``>= 0`` with ``allow_zero``); else ValueError naming ``name``."""
    array = check_finite(name, value)
    bad = array < 0 if allow_zero else array <= 0
    if bad.any():
        first = array[bad].ravel()[0]
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} ({what}); {int(bad.sum())} value(s) are "
                         f"not, e.g. {first}{where(bad)}")
    return array


def check_scalar(name: str, value, *, positive: bool = True) -> float:
    """A finite real scalar (> 0 when ``positive``) as a float; else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.ndarray, np.generic)) \
            or np.ndim(value) != 0:
        raise ValueError(f"{name} must be a real number, got {value!r}")
    number = float(value)
    if not np.isfinite(number) or (positive and number <= 0):
        raise ValueError(f"{name} must be a finite number{' > 0' if positive else ''}, got {value!r}")
    return number


def check_count(name: str, value, *, minimum: int = 0) -> int:
    """A whole number >= ``minimum`` (an int, or a float without fraction) as an int; else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if not float(value).is_integer() or int(value) < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)
