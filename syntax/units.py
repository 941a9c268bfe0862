"""Clause 5.1: the bitstream as a sequence of length-prefixed units.

bitstream( ) {
    while( more_data_in_bitstream( ) ) {
        unit_length                                     u(32)
        unit( unit_length )
    }
}

Framing by length prefix rather than start codes: payloads (rANS lane data,
HEVC/VVC bitstreams carried as is) are arbitrary bytes, so start codes would
need emulation prevention over every payload byte; a length prefix costs 4
bytes per unit, lets a parser skip a unit in O(1) and lets an extractor drop
units by their header alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import BitstreamError
from .hls import (LAYERED_UNIT_TYPES, PAYLOAD_STRUCTURES, UNIT_TYPE_NAMES, UT_SPS, UnitHeader,
                  unit_header)
from .levels import MAX_UNIT_BYTES_NO_SPS, level_for
from .rw import Struct, SyntaxReader, SyntaxWriter, Trace, syntax_structure

UNIT_LENGTH_BYTES = 4
UNIT_HEADER_BYTES = 2


@syntax_structure("5.1")
def unit_framing(rw, uf, max_unit_bytes):
    rw.u(32, "unit_length", UNIT_HEADER_BYTES, max_unit_bytes)


@dataclass
class Unit:
    unit_type: int
    unit_layer_id: int = 0
    unit_temporal_id: int = 0
    payload: Struct | None = None   # parsed payload (None for unknown types)
    raw: bytes = b""                # payload bytes (after the unit header)
    offset: int = 0                 # byte offset of unit_length in the stream
    index: int = 0

    @property
    def type_name(self) -> str:
        return UNIT_TYPE_NAMES.get(self.unit_type, f"RSV{self.unit_type}")

    @property
    def size(self) -> int:
        """unit_length: header plus payload bytes."""
        return UNIT_HEADER_BYTES + len(self.raw)

    @property
    def payload_bitpos(self) -> int:
        """Bit position in the stream of the payload's first syntax element."""
        return (self.offset + UNIT_LENGTH_BYTES + UNIT_HEADER_BYTES) * 8

    def summary(self) -> str:
        return (f"unit {self.index:<5} byte {self.offset:<9} {self.type_name:<12} "
                f"layer {self.unit_layer_id:<2} tid {self.unit_temporal_id}  length {self.size}")


def _unit_banner(trace, index, offset, unit_type, layer, tid, length):
    if trace is not None:
        name = UNIT_TYPE_NAMES.get(unit_type, f"RSV{unit_type}")
        trace.header(f"# unit {index} byte {offset}: {name} layer {layer} tid {tid} length {length}")


class BitstreamWriter:
    """Writes units; keeps the active SPS for the payload structures."""

    def __init__(self, trace: Trace | None = None):
        self.trace = trace
        self.chunks: list[bytes] = []
        self.nbytes = 0
        self.sps = None
        self.count = 0

    def write_unit(self, unit_type: int, payload: Struct | None, *, layer_id: int = 0,
                   temporal_id: int = 0, raw: bytes | None = None) -> bytes:
        """Write one unit; ``payload`` is built with its syntax structure
        (or ``raw`` bytes are written as is for reserved unit types)."""
        offset = self.nbytes
        base = (offset + UNIT_LENGTH_BYTES) * 8
        ptrace = Trace() if self.trace is not None else None
        hw = SyntaxWriter(ptrace, base_bitpos=base, where=f"unit {self.count}")
        uh = UnitHeader(unit_type=unit_type, unit_layer_id=layer_id,
                        unit_temporal_id_plus1=temporal_id + 1)
        unit_header(hw, uh)
        if raw is None:
            struct = PAYLOAD_STRUCTURES.get(unit_type)
            if struct is None:
                raise BitstreamError(f"no syntax structure for unit_type {unit_type}; pass raw bytes",
                                     element="unit_type", where=f"unit {self.count}")
            pw = SyntaxWriter(ptrace, base_bitpos=base + 16, where=f"unit {self.count}")
            if unit_type == UT_SPS:
                struct(pw, payload)
                self.sps = payload
            else:
                if self.sps is None:
                    raise BitstreamError("a unit that refers to the SPS precedes the first SPS",
                                         where=f"unit {self.count}", clause="5.3",
                                         shall="The first unit of a bitstream shall be an SPS unit")
                struct(pw, payload, self.sps)
            body = pw.getvalue()
        else:
            body = bytes(raw)
        data = hw.getvalue() + body
        max_bytes = level_for(self.sps.sps_level_idc).MaxUnitBytes if self.sps is not None else MAX_UNIT_BYTES_NO_SPS
        fw = SyntaxWriter(None, base_bitpos=offset * 8, where=f"unit {self.count}")
        fr = Struct(unit_length=len(data))
        ltrace = Trace() if self.trace is not None else None
        fw.trace = ltrace
        unit_framing(fw, fr, max_bytes)
        out = fw.getvalue() + data
        if self.trace is not None:
            _unit_banner(self.trace, self.count, offset, unit_type, layer_id, temporal_id, len(data))
            for line in ltrace.lines + ptrace.lines:
                self.trace.emit(line)
            if raw is not None:
                self.trace.header(f"#   reserved unit_type {unit_type}: {len(body)} payload bytes skipped")
        self.chunks.append(out)
        self.nbytes += len(out)
        self.count += 1
        return out

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)


def iter_units(data: bytes, trace: Trace | None = None, *, parse: bool = True,
               skip_types: frozenset = frozenset()):
    """Parse a bitstream unit by unit (clause 5.1).

    Units of reserved types are skipped (yielded with ``payload=None``).  Every
    malformation raises BitstreamError naming the unit, element and bit.
    """
    data = bytes(data)
    pos = 0
    index = 0
    sps = None
    n = len(data)
    while pos < n:
        where = f"unit {index}"
        max_bytes = level_for(sps.sps_level_idc).MaxUnitBytes if sps is not None else MAX_UNIT_BYTES_NO_SPS
        if n - pos < UNIT_LENGTH_BYTES:
            raise BitstreamError(f"truncated: {n - pos} bytes left, unit_length needs 4",
                                 structure="unit_framing", element="unit_length", bitpos=pos * 8,
                                 clause="5.1", where=where)
        ltrace = Trace() if trace is not None else None
        fr = Struct()
        unit_framing(SyntaxReader(data[pos:pos + 4], ltrace, base_bitpos=pos * 8, where=where), fr, max_bytes)
        length = fr.unit_length
        if pos + 4 + length > n:
            raise BitstreamError(
                f"unit_length {length} exceeds the {n - pos - 4} bytes left in the bitstream (truncated stream?)",
                structure="unit_framing", element="unit_length", bitpos=pos * 8, clause="5.1", where=where)
        body = data[pos + 4:pos + 4 + length]
        base = (pos + 4) * 8
        htrace = Trace() if trace is not None else None
        uh = UnitHeader()
        unit_header(SyntaxReader(body[:2], htrace, base_bitpos=base, where=where), uh)
        ut = uh.unit_type
        if trace is not None:
            _unit_banner(trace, index, pos, ut, uh.unit_layer_id, uh.unit_temporal_id_plus1 - 1, length)
            for line in ltrace.lines + htrace.lines:
                trace.emit(line)
        if index == 0 and ut != UT_SPS:
            raise BitstreamError(f"the first unit is a {UNIT_TYPE_NAMES.get(ut, f'reserved (type {ut})')} unit",
                                 structure="unit_header", element="unit_type", bitpos=base + 1, clause="5.3",
                                 shall="The first unit of a bitstream shall be an SPS unit", where=where)
        if ut == UT_SPS and length > MAX_UNIT_BYTES_NO_SPS:
            raise BitstreamError(f"SPS unit of {length} bytes", structure="unit_framing", element="unit_length",
                                 bitpos=pos * 8, clause="5.1", where=where,
                                 shall=f"unit_length of an SPS unit shall not exceed {MAX_UNIT_BYTES_NO_SPS}")
        unit = Unit(ut, uh.unit_layer_id, uh.unit_temporal_id_plus1 - 1, None, body[2:], pos, index)
        struct = PAYLOAD_STRUCTURES.get(ut)
        if parse and struct is not None and (ut == UT_SPS or ut not in skip_types):   # later units need the SPS
            r = SyntaxReader(body[2:], trace, base_bitpos=base + 16, where=where)
            obj = Struct()
            if uh.unit_layer_id != 0 and ut not in LAYERED_UNIT_TYPES:
                raise BitstreamError(f"{UNIT_TYPE_NAMES[ut]} unit with unit_layer_id {uh.unit_layer_id}",
                                     structure="unit_header", element="unit_layer_id", bitpos=base + 7,
                                     clause="5.2", where=where,
                                     shall="unit_layer_id shall be 0 except in LATENT and DPH units")
            if ut == UT_SPS:
                struct(r, obj)
                sps = obj
            else:
                struct(r, obj, sps)   # an SPS precedes: the first unit is one (checked above)
            if r.bits_left() != 0:
                raise BitstreamError(
                    f"{r.bits_left() // 8} bytes left in the unit after the end of its syntax structure",
                    structure=struct.__name__, element="unit_length", bitpos=r.abs_pos(), clause="5.1", where=where,
                    shall="unit_length shall be equal to the size of the unit")
            unit.payload = obj
        elif trace is not None and struct is None:
            trace.header(f"#   reserved unit_type {ut}: {len(body) - 2} payload bytes skipped")
        yield unit
        pos += 4 + length
        index += 1


def parse_units(data: bytes, trace: Trace | None = None) -> list[Unit]:
    return list(iter_units(data, trace))


def rewrite_unit(data: bytes, unit: Unit, *, payload: Struct | None = None, layer_id: int | None = None,
                 temporal_id: int | None = None) -> bytes:
    """``data`` with ``unit`` (one of ``parse_units(data)``) written anew through its
    syntax structures, with another payload and/or unit header fields; the other
    units are copied byte for byte.  For crafting test and conformance streams (the
    role of FFmpeg's metadata bitstream filters); the header constraints of 5.2 that
    the parser checks are not applied, so a non-conforming header can be written."""
    w = BitstreamWriter()
    if unit.unit_type != UT_SPS:
        w.sps = next((u.payload for u in reversed(parse_units(data[:unit.offset])) if u.unit_type == UT_SPS), None)
    w.write_unit(unit.unit_type, unit.payload if payload is None else payload,
                 layer_id=unit.unit_layer_id if layer_id is None else layer_id,
                 temporal_id=unit.unit_temporal_id if temporal_id is None else temporal_id,
                 raw=unit.raw if unit.payload is None and payload is None else None)
    return data[:unit.offset] + w.getvalue() + data[unit.offset + UNIT_LENGTH_BYTES + unit.size:]
