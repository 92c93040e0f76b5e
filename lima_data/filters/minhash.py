"""MinHash signatures and a banded LSH index with numpy only.

The same sketches as datasketch 2.x's default MinHash (``scheme="affine32"``: 32-bit SHA-1 of each shingle,
pre-mixed with the MurmurHash3 finalizer, then ``a_k * h + b_k mod 2**32`` with odd ``a_k`` drawn from
``numpy.random.RandomState(seed)``) and the same band layout and parameters as its ``MinHashLSH``
(``b`` bands of ``r`` rows minimising 0.5 * false positives + 0.5 * false negatives), so dedup decisions match
datasketch's; ``tests/test_interop.py`` checks both against datasketch. Why not datasketch itself: importing it
imports scipy (for one integral), about a second of every build's start-up; here the integrals are exact
(Gauss-Legendre on polynomials of degree ``b * r``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Hashable, Iterable
from functools import lru_cache

import numpy as np

_UINT32 = np.uint32


def _fmix32(hv: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, element-wise (wrapping uint32 arithmetic)."""
    hv = hv ^ (hv >> _UINT32(16))
    hv = hv * _UINT32(0x85EBCA6B)
    hv = hv ^ (hv >> _UINT32(13))
    hv = hv * _UINT32(0xC2B2AE35)
    return hv ^ (hv >> _UINT32(16))


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` arrays (uint32, ``num_perm`` each; ``a`` odd) of the affine permutations for ``seed``."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=_UINT32) * _UINT32(2) + _UINT32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=_UINT32)
    return a, b


def signature(shingles: Iterable[bytes], num_perm: int, seed: int) -> np.ndarray:
    """The MinHash of a set of byte strings: ``num_perm`` uint32 minima (all ``2**32 - 1`` for an empty set)."""
    a, b = permutations(num_perm, seed)
    sha1 = hashlib.sha1
    # the first 4 bytes of each digest, read at once as little-endian uint32 (no per-shingle int conversion)
    hv = np.frombuffer(b"".join([sha1(s).digest()[:4] for s in shingles]), dtype="<u4").astype(_UINT32)
    if not len(hv):
        return np.full(num_perm, np.iinfo(_UINT32).max, dtype=_UINT32)
    with np.errstate(over="ignore"):
        phv = _fmix32(hv).reshape(-1, 1) * a + b
    return phv.min(axis=0)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures: the share of equal minima."""
    return float(np.count_nonzero(a == b)) / len(a)


@lru_cache(maxsize=32)
def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5
                  ) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows <= num_perm`` minimising ``fp_weight * P(false positive) +
    fn_weight * P(false negative)`` for pairs of Jaccard similarity uniform on [0, 1] (datasketch's rule, ties to
    the smaller ``bands`` then ``rows``). ``P(candidate | s) = 1 - (1 - s**r)**b`` is a polynomial of degree
    ``b * r``, so Gauss-Legendre with ``num_perm`` nodes integrates it exactly."""
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    pairs = np.array([(bands, rows) for bands in range(1, num_perm + 1) for rows in range(1, num_perm // bands + 1)],
                     dtype=np.float64)
    bands, rows = pairs[:, :1], pairs[:, 1:]

    def integral(f, lo: float, hi: float) -> np.ndarray:
        x = (hi - lo) / 2 * nodes + (hi + lo) / 2
        return (hi - lo) / 2 * (f(x[None, :]) @ weights)

    fp = integral(lambda s: 1 - (1 - s**rows) ** bands, 0.0, threshold)
    fn = integral(lambda s: (1 - s**rows) ** bands, threshold, 1.0)
    error = fp * fp_weight + fn * fn_weight
    best = int(np.argmin(error))  # the first minimum: the smaller bands, then rows (pairs are in that order)
    return int(pairs[best, 0]), int(pairs[best, 1])


class LSHIndex:
    """Banded LSH over MinHash signatures: keys whose signatures agree on all rows of at least one band are
    candidates. ``threshold`` and ``num_perm`` fix the bands (:func:`optimal_bands`)."""

    def __init__(self, threshold: float, num_perm: int):
        self.bands, self.rows = optimal_bands(float(threshold), int(num_perm))
        self.tables: list[dict[bytes, list[Hashable]]] = [defaultdict(list) for _ in range(self.bands)]

    def _keys(self, sig: np.ndarray):
        r = self.rows
        return ((table, sig[i * r:(i + 1) * r].tobytes()) for i, table in enumerate(self.tables))

    def insert(self, key: Hashable, sig: np.ndarray) -> None:
        for table, band in self._keys(sig):
            table[band].append(key)

    def query(self, sig: np.ndarray) -> set[Hashable]:
        found: set[Hashable] = set()
        for table, band in self._keys(sig):
            found.update(table.get(band, ()))
        return found
