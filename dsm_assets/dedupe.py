"""Dedupe keys and the set of keys seen so far: cleaning keeps the first row of each dedupe key.

The state is a 128-bit hash per kept key (16 bytes, however long the key) instead of the keys themselves,
so a file far larger than memory keeps a small state. 128 bits, not 64, because a collision silently drops
a row: among 10^10 distinct keys the chance of one is ~10^-19 with 128 bits, near certainty with 64."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash


def key_array(batch: pa.RecordBatch, columns: tuple[str, ...]) -> pa.Array:
    """The dedupe key of each row: the one column itself, or the columns joined unambiguously (see _key_part)."""
    if len(columns) == 1:
        return key_column(batch.column(columns[0]))
    return pc.binary_join_element_wise(*[_key_part(batch.column(c)) for c in columns], b"")


def key_column(column: pa.Array) -> pa.Array:
    """An image or audio column ({bytes, path} struct) keys on the file's bytes only: the same file under two
    paths is one. A null value stays null. Any other column is its own key."""
    if pa.types.is_struct(column.type) and column.type.get_field_index("bytes") >= 0:
        return column.flatten()[column.type.get_field_index("bytes")]  # flatten(): the parent's nulls apply
    return column


def _key_part(column: pa.Array) -> pa.Array:
    """One column of a composite key as `<byte length>:<bytes>`, null as `~`. Concatenated, these parts are
    unambiguous: a separator could also occur inside a value, and a null marker could equal a value."""
    column = key_column(column)
    if not (pa.types.is_string(column.type) or pa.types.is_binary(column.type)):
        column = column.cast(pa.string())
    data = column.cast(pa.binary())
    length = pc.binary_length(data).cast(pa.string()).cast(pa.binary())
    return pc.fill_null(pc.binary_join_element_wise(length, data, b":"), b"~")


def key_hashes(keys: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Each key as two uint64 halves (hi, lo). Text and binary keys: their xxh3-128 digest. Fixed-width keys
    (ints, floats, bools, dates, timestamps): their own bits and 1, exact (equal means bitwise equal, as for
    Arrow's group_by and is_in before). A null key is (0, 0): one more value, equal only to itself."""
    typ = keys.type
    large = pa.types.is_large_string(typ) or pa.types.is_large_binary(typ)
    if large or pa.types.is_string(typ) or pa.types.is_binary(typ):
        hi, lo = np.frombuffer(_digests(keys, large), dtype=np.uint64).reshape(-1, 2).T.copy()
    elif pa.types.is_boolean(typ) or (pa.types.is_primitive(typ) and typ.bit_width in (8, 16, 32, 64)):
        bits = keys.cast(pa.uint8()) if pa.types.is_boolean(typ) else keys.view(f"uint{typ.bit_width}")
        hi = pc.fill_null(bits, 0).to_numpy().astype(np.uint64)
        lo = np.ones(len(keys), dtype=np.uint64)
    else:
        raise pa.ArrowNotImplementedError(f"Keys of type {typ} are not supported for dedupe")
    if keys.null_count:
        null = pc.is_null(keys).to_numpy(zero_copy_only=False)
        hi[null] = lo[null] = 0
    return hi, lo


def _digests(values: pa.Array, large: bool) -> bytes:
    """The xxh3-128 digest of each text or binary value, concatenated. Hashed from slices of the data buffer:
    half the time of making a bytes object of each value (to_pylist). A null value's slot is hashed as it is
    (key_hashes overrides it)."""
    if not len(values):
        return b""
    _, offsets, data = values.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64 if large else np.int32)
    bounds = bounds[values.offset: values.offset + len(values) + 1]
    view = memoryview(data if data is not None else b"")
    digest = xxhash.xxh3_128_digest
    return b"".join([digest(view[start:end]) for start, end in pairwise(bounds.tolist())])


class SeenKeys:
    """A set of 128-bit hashes (hi, lo) held as sorted runs, LSM style: a batch's new hashes become a run,
    merged with the newest runs while they are no larger, so there are O(log n) runs. A lookup is a binary
    search per run, an insert costs O(log n) amortised copies: ~16 bytes a key, no Python object per key.
    Runs are sorted by `hi` only; `lo` is compared on every `hi` match, so equal `hi` halves stay correct."""

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def add_new(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Which rows are new: their hash is not seen before, nor in an earlier row of this batch. Adds them."""
        new = np.zeros(len(hi), dtype=bool)
        if not len(hi):
            return new
        order = np.argsort(hi)
        s_hi, s_lo = hi[order], lo[order]
        if ((s_hi[1:] == s_hi[:-1]) & (s_lo[1:] != s_lo[:-1])).any():  # equal hi, different lo: sort by both
            order = np.lexsort((lo, hi))
            s_hi, s_lo = hi[order], lo[order]
        starts = np.flatnonzero(np.r_[True, (s_hi[1:] != s_hi[:-1]) | (s_lo[1:] != s_lo[:-1])])
        s_hi, s_lo = s_hi[starts], s_lo[starts]  # each distinct hash once, sorted
        unseen = ~self._contains(s_hi, s_lo)
        self._add(s_hi[unseen], s_lo[unseen])
        new[np.minimum.reduceat(order, starts)[unseen]] = True  # the earliest row of each unseen hash
        return new

    def _contains(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        found = np.zeros(len(hi), dtype=bool)
        for run_hi, run_lo in self._runs:
            at, rows = np.searchsorted(run_hi, hi), np.arange(len(hi))
            while len(rows):  # walk the run's entries with this hi: one at most, unless two share it
                inside = at < len(run_hi)
                rows, at = rows[inside], at[inside]
                equal = run_hi[at] == hi[rows]
                rows, at = rows[equal], at[equal] + 1
                found[rows] |= run_lo[at - 1] == lo[rows]
        return found

    def _add(self, hi: np.ndarray, lo: np.ndarray) -> None:
        while self._runs and len(self._runs[-1][0]) <= len(hi):
            run_hi, run_lo = self._runs.pop()
            at = np.searchsorted(run_hi, hi) + np.arange(len(hi))  # where each new hash lands when merged
            old = np.ones(len(run_hi) + len(hi), dtype=bool)
            old[at] = False
            hi, run_hi = _merged(run_hi, hi, at, old), None  # one half at a time: 8 extra bytes a key, not 16
            lo, run_lo = _merged(run_lo, lo, at, old), None
        if len(hi):
            self._runs.append((hi, lo))


def _merged(run: np.ndarray, new: np.ndarray, at: np.ndarray, old: np.ndarray) -> np.ndarray:
    out = np.empty(len(old), dtype=run.dtype)
    out[old], out[at] = run, new
    return out
