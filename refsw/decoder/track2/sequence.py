"""Track 2 sequence decoding process (8.4, T2.8): the INNER units of a coded
sequence form the inner bitstream, which is decoded as a whole at the end of
the sequence; its output pictures are assigned to the coded (not dropped)
pictures in order and restored (docs/spec/track2.md)."""
from __future__ import annotations

from syntax import hls
from syntax.errors import BitstreamError

from ..core import SEQUENCE_DECODERS
from . import inner, temporal
from .reconstruct import params, reconstruct


def decode_sequence(dec, sps, seq_rm, cps):
    """8.4 / T2.8: decode the inner bitstream of the coded sequence, then restore."""
    p = params(sps, seq_rm)
    inner_units = [u for cp in cps for u in cp.units_of(hls.UT_INNER)]
    if not inner_units:
        raise BitstreamError("a coded sequence of inner-codec pictures has no INNER unit",
                             structure="picture_header", element="ph_pic_coding_mode", clause="8.4",
                             where=f"unit {cps[0].ph_unit.index}")
    data = b"".join(u.payload.icp_data_byte for u in inner_units)
    n = len(cps)
    m = len(temporal.coded_indices(n, p.temporal_ratio))
    where = (f"units {inner_units[0].index}..{inner_units[-1].index} (INNER)" if len(inner_units) > 1
             else f"unit {inner_units[0].index} (INNER)")
    pics = inner.decode(p.codec_idc, data, p.coded_width, p.coded_height, p.inner_depth, m, where=where)
    out = reconstruct(p, pics, n)
    return out


SEQUENCE_DECODERS[hls.INNER_MODE] = decode_sequence
