"""Deterministic multi-lane rANS entropy coding (spec: docs/spec/entropy.md).

Symmetric, tensor-shaped API::

    data = encode(symbols, table_indexes, tables)        # -> bytes
    symbols = decode(data, table_indexes, tables)        # shape of table_indexes

Core API used by the syntax layer (``entropy_substream()``)::

    subs = encode_substreams(symbols, table_indexes, tables, num_lanes=None)
    symbols = decode_substreams(subs, table_indexes, tables)

``tables`` is a :class:`RansTables`; :func:`gaussian_tables` returns the
normative Gaussian-conditional set (64 scale indices).  Malformed data raises
:class:`syntax.errors.BitstreamError` and nothing else.
"""
from __future__ import annotations

from . import container
from .rans import (MAX_LANES, RansSubstreams, decode_substreams, default_num_lanes,
                   encode_substreams)
from .tables import (GAUSSIAN_NUM_SCALES, PRECISION, RansTables, gaussian_scale_index,
                     gaussian_scales, gaussian_tables, quantize_pmf)

__all__ = [
    "encode", "decode", "encode_substreams", "decode_substreams", "RansSubstreams",
    "RansTables", "gaussian_tables", "gaussian_scales", "gaussian_scale_index",
    "quantize_pmf", "default_num_lanes", "PRECISION", "MAX_LANES", "GAUSSIAN_NUM_SCALES",
    "container",
]


def encode(symbols, table_indexes, tables: RansTables, num_lanes: int | None = None,
           backend: str = "numpy", device=None) -> bytes:
    """Encode to one self-contained byte string (layout: spec clause 9.6)."""
    return container.write(encode_substreams(symbols, table_indexes, tables,
                                             num_lanes=num_lanes, backend=backend,
                                             device=device))


def decode(data: bytes, table_indexes, tables: RansTables, backend: str = "numpy",
           device=None):
    """Inverse of :func:`encode`; the output has the shape of ``table_indexes``."""
    return decode_substreams(container.read(data), table_indexes, tables,
                             backend=backend, device=device)
