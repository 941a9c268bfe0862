"""Syntax readers and writers (clause 4: descriptors).

A syntax structure is written once, as a function ``f(rw, obj, ...)``.  The
object ``rw`` is a :class:`SyntaxReader` (parse: elements are read from the
bitstream and stored on ``obj``), a :class:`SyntaxWriter` (build: elements are
taken from ``obj``, range-checked and written), in the manner of FFmpeg's CBS
syntax templates.  Both emit the same trace through :class:`Trace`.

Descriptors (as in ITU-T H.266 clause 7.2):

* ``f(n)``  fixed-pattern bit string, n bits, MSB first;
* ``u(n)``  unsigned integer using n bits, MSB first;
* ``ue(v)`` unsigned integer 0-th order Exp-Golomb;
* ``se(v)`` signed integer 0-th order Exp-Golomb (k>0 -> 2k-1, k<=0 -> -2k);
* ``b(8)``  byte; byte strings are traced by length and MD5;
* ``u(v)``  sample arrays: fixed-length unsigned samples, raster order.
"""
from __future__ import annotations

import functools
import hashlib
from typing import Any, Callable

import bitstring
import numpy as np

from .errors import BitstreamError

# An Exp-Golomb code word longer than this (in leading zeros) is malformed.
MAX_EG_LEADING_ZEROS = 32


class Struct:
    """Holder of the syntax element values of one syntax structure instance."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        items = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items()
                          if not k.startswith("_"))
        return f"{type(self).__name__}({items})"

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def get(self, name, default=None):
        return self.__dict__.get(name, default)


# ---------------------------------------------------------------------------
# Trace
# ---------------------------------------------------------------------------

class Trace:
    """Collects trace lines: bit position, element name, descriptor, value."""

    def __init__(self, sink: Callable[[str], None] | None = None):
        self.lines: list[str] = []
        self.sink = sink

    def emit(self, line: str):
        if self.sink is not None:
            self.sink(line)
        else:
            self.lines.append(line)

    def element(self, pos: int, name: str, desc: str, value: Any):
        self.emit(f"{pos:>10}  {name:<44} {desc:<6} = {value}")

    def header(self, text: str):
        self.emit(text)

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def _fmt_name(name: str, idx) -> str:
    if idx is None:
        return name
    if not isinstance(idx, tuple):
        idx = (idx,)
    return name + "".join(f"[{i}]" for i in idx)


def _fmt_bytes(v: bytes) -> str:
    if len(v) <= 32:
        return "0x" + v.hex() if v else "<0 bytes>"
    return f"<{len(v)} bytes md5={hashlib.md5(v).hexdigest()}>"


def syntax_structure(clause: str):
    """Decorator marking a syntax structure function ``f(rw, obj, *ctx)``.

    The wrapper pushes the structure (name, object, clause) on ``rw`` so that
    element calls refer to ``obj`` and errors name the structure and clause.
    """

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(rw, obj, *args, **kw):
            rw._push(fn.__name__, obj, clause)
            try:
                return fn(rw, obj, *args, **kw)
            finally:
                rw._pop()

        wrapper.clause = clause
        wrapper.is_syntax_structure = True
        return wrapper

    return deco


# ---------------------------------------------------------------------------
# Exp-Golomb helpers (clause 4.3)
# ---------------------------------------------------------------------------

def ue_bits(value: int) -> str:
    """ue(v) code word of ``value`` as a string of '0'/'1'."""
    if value < 0:
        raise ValueError("ue(v) value must be >= 0")
    b = bin(value + 1)[2:]
    return "0" * (len(b) - 1) + b


def se_to_ue(value: int) -> int:
    return 2 * value - 1 if value > 0 else -2 * value


def ue_to_se(k: int) -> int:
    return (k + 1) // 2 if k & 1 else -(k // 2)


# ---------------------------------------------------------------------------
# Common base
# ---------------------------------------------------------------------------

class _RW:
    reading = False
    writing = False

    def __init__(self, trace: Trace | None = None, base_bitpos: int = 0,
                 where: str | None = None):
        self.trace = trace
        self.base_bitpos = base_bitpos
        self.where = where
        self._stack: list[tuple[str, Any, str]] = []

    # structure stack -----------------------------------------------------
    def _push(self, name, obj, clause):
        self._stack.append((name, obj, clause))

    def _pop(self):
        self._stack.pop()

    @property
    def obj(self):
        return self._stack[-1][1]

    @property
    def structure(self):
        return self._stack[-1][0] if self._stack else None

    @property
    def clause(self):
        return self._stack[-1][2] if self._stack else None

    def error(self, message, element=None, shall=None, bitpos=None, clause=None):
        return BitstreamError(
            message, structure=self.structure, element=element,
            bitpos=self.abs_pos() if bitpos is None else bitpos,
            clause=clause or self.clause, shall=shall, where=self.where)

    def abs_pos(self) -> int:
        return self.base_bitpos + self.pos()

    # element storage -------------------------------------------------------
    def _get(self, name, idx):
        obj = self.obj
        if idx is None:
            if not hasattr(obj, name):
                raise self.error("value missing in the structure to be written", _fmt_name(name, idx))
            return getattr(obj, name)
        arr = getattr(obj, name, None)
        try:
            v = arr
            for i in (idx if isinstance(idx, tuple) else (idx,)):
                v = v[i]
            return v
        except (TypeError, IndexError, KeyError):
            raise self.error("value missing in the structure to be written", _fmt_name(name, idx))

    def _set(self, name, idx, value):
        obj = self.obj
        if idx is None:
            setattr(obj, name, value)
            return
        idx = idx if isinstance(idx, tuple) else (idx,)
        if not hasattr(obj, name) or getattr(obj, name) is None:
            setattr(obj, name, [])
        arr = getattr(obj, name)
        for i in idx[:-1]:
            while len(arr) <= i:
                arr.append([])
            arr = arr[i]
        i = idx[-1]
        while len(arr) <= i:
            arr.append(None)
        arr[i] = value

    def _check_range(self, name, idx, value, lo, hi, pos):
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            n = _fmt_name(name, idx)
            raise self.error(
                f"value {value} out of range", n,
                shall=f"The value of {n} shall be in the range of {lo} to {hi}, inclusive",
                bitpos=pos)

    def _trace(self, pos, name, idx, desc, value):
        if self.trace is not None:
            self.trace.element(pos, _fmt_name(name, idx), desc, value)

    def shall(self, cond: bool, text: str, element: str | None = None,
              clause: str | None = None):
        """Check a constraint of the spec; ``text`` quotes the shall-sentence."""
        if not cond:
            raise self.error("constraint violated", element, shall=text, clause=clause)

    def flag(self, name, idx=None):
        return self.u(1, name, 0, 1, idx=idx)


# ---------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------

class SyntaxReader(_RW):
    """Parses syntax elements from ``data`` (bytes) into structure objects."""

    reading = True

    def __init__(self, data: bytes, trace: Trace | None = None,
                 base_bitpos: int = 0, where: str | None = None):
        super().__init__(trace, base_bitpos, where)
        self.data = bytes(data)
        self.bs = bitstring.ConstBitStream(self.data)
        self.nbits = len(self.data) * 8
        self._stop = None

    def pos(self) -> int:
        return self.bs.pos

    def bits_left(self) -> int:
        return self.nbits - self.bs.pos

    def _need(self, n, name, idx):
        if n > self.bits_left():
            raise self.error(
                f"truncated: needs {n} bits, {self.bits_left()} left in the unit",
                _fmt_name(name, idx))

    def _read_uint(self, n, name, idx):
        self._need(n, name, idx)
        if n == 0:
            return 0
        return self.bs.read(f"uint:{n}")

    def f(self, n, name, value, idx=None):
        pos = self.abs_pos()
        v = self._read_uint(n, name, idx)
        self._trace(pos, name, idx, f"f({n})", v)
        if v != value:
            nm = _fmt_name(name, idx)
            raise self.error(f"read {v}, expected {value}", nm,
                             shall=f"{nm} shall be equal to {value}", bitpos=pos)
        self._set(name, idx, v)
        return v

    def u(self, n, name, lo=None, hi=None, idx=None):
        pos = self.abs_pos()
        v = self._read_uint(n, name, idx)
        self._trace(pos, name, idx, f"u({n})", v)
        self._check_range(name, idx, v, lo, hi, pos)
        self._set(name, idx, v)
        return v

    def _read_eg(self, name, idx):
        lz = 0
        while True:
            self._need(1, name, idx)
            if self.bs.read("uint:1"):
                break
            lz += 1
            if lz > MAX_EG_LEADING_ZEROS:
                raise self.error(f"Exp-Golomb code with more than {MAX_EG_LEADING_ZEROS} leading zero bits",
                                 _fmt_name(name, idx), clause="4.3",
                                 shall=f"A ue(v) or se(v) code word shall not have more than "
                                       f"{MAX_EG_LEADING_ZEROS} leading zero bits")
        rest = self._read_uint(lz, name, idx) if lz else 0
        return (1 << lz) - 1 + rest

    def ue(self, name, lo=None, hi=None, idx=None):
        pos = self.abs_pos()
        v = self._read_eg(name, idx)
        self._trace(pos, name, idx, "ue(v)", v)
        self._check_range(name, idx, v, lo, hi, pos)
        self._set(name, idx, v)
        return v

    def se(self, name, lo=None, hi=None, idx=None):
        pos = self.abs_pos()
        v = ue_to_se(self._read_eg(name, idx))
        self._trace(pos, name, idx, "se(v)", v)
        self._check_range(name, idx, v, lo, hi, pos)
        self._set(name, idx, v)
        return v

    def infer(self, name, value, idx=None):
        """Absent element: its value is inferred (not traced)."""
        self._set(name, idx, value)
        return value

    def byte_aligned(self) -> bool:
        return self.bs.pos % 8 == 0

    def _zero_run(self, name):
        """Zero bits up to the next byte boundary, traced as one line."""
        n = (-self.bs.pos) % 8
        if n == 0:
            return
        pos = self.abs_pos()
        self._need(n, name, None)
        v = self.bs.read(f"uint:{n}")
        if self.trace is not None:
            self.trace.element(pos, name, f"f(1)x{n}", v)
        if v != 0:
            raise self.error(f"read {v:0{n}b}, expected zero bits", name,
                             shall=f"{name} shall be equal to 0", bitpos=pos)

    def byte_alignment(self):
        """byte_alignment(): alignment_bit_equal_to_one f(1), then zero bits."""
        self.f(1, "alignment_bit_equal_to_one", 1)
        self._zero_run("alignment_bit_equal_to_zero")

    def zero_alignment(self, name="alignment_zero_bit"):
        """Zero bits up to the next byte boundary."""
        self._zero_run(name)

    def more_rbsp_data(self, name=None) -> bool:
        """True if data remain before rbsp_trailing_bits() (H.266 7.2)."""
        if self.bits_left() <= 0:
            return False
        return self.bs.pos < self._stop_pos()

    def _stop_pos(self) -> int:
        """Position of the last 1 bit of the payload (the rbsp_stop_one_bit), -1 if
        none; found once per payload, so a loop on more_rbsp_data() stays linear."""
        if self._stop is None:
            body = self.data.rstrip(b"\0")
            if not body:
                self._stop = -1
            else:
                b = body[-1]
                self._stop = (len(body) - 1) * 8 + (7 - ((b & -b).bit_length() - 1))
        return self._stop

    def rbsp_trailing_bits(self):
        self.f(1, "rbsp_stop_one_bit", 1)
        self._zero_run("rbsp_alignment_zero_bit")

    def bytes(self, name, n, idx=None, lo=None, hi=None):
        """``n`` bytes b(8); ``n=None`` reads to the end of the unit."""
        pos = self.abs_pos()
        if not self.byte_aligned():
            raise self.error("byte string not byte aligned", _fmt_name(name, idx))
        if n is None:
            n = self.bits_left() // 8
        self._need(8 * n, name, idx)
        start = self.bs.pos // 8
        v = self.data[start:start + n]
        self.bs.pos += 8 * n
        self._trace(pos, name, idx, "b(8)", _fmt_bytes(v))
        self._set(name, idx, v)
        return v

    def samples(self, name, shape, nbits, idx=None):
        """Sample array: prod(shape) samples, u(nbits) each, raster order."""
        pos = self.abs_pos()
        count = int(np.prod(shape))
        total = count * nbits
        self._need(total, name, idx)
        if not self.byte_aligned():
            raise self.error("sample array not byte aligned", _fmt_name(name, idx))
        start = self.bs.pos // 8
        nbytes = (total + 7) // 8
        raw = np.frombuffer(self.data, dtype=np.uint8, count=nbytes, offset=start)
        arr = unpack_samples(raw, count, nbits).reshape(shape)
        self.bs.pos += total
        self._trace(pos, name, idx, f"u({nbits})",
                    f"<{'x'.join(map(str, shape))} samples md5={hashlib.md5(arr.astype('<u2').tobytes()).hexdigest()}>")
        self._set(name, idx, arr)
        return arr


# ---------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------

class SyntaxWriter(_RW):
    """Writes syntax elements taken from structure objects."""

    writing = True

    def __init__(self, trace: Trace | None = None, base_bitpos: int = 0,
                 where: str | None = None):
        super().__init__(trace, base_bitpos, where)
        self.bs = bitstring.BitStream()
        self._more_count: dict = {}

    def pos(self) -> int:
        return len(self.bs)

    def getvalue(self) -> bytes:
        if len(self.bs) % 8:
            raise BitstreamError("writer not byte aligned at the end of the unit",
                                 bitpos=self.abs_pos(), where=self.where)
        return self.bs.tobytes()

    def _int(self, name, idx, v):
        if isinstance(v, (bool, np.bool_)):
            return int(v)
        if isinstance(v, (int, np.integer)):
            return int(v)
        raise self.error(f"value {v!r} is not an integer", _fmt_name(name, idx))

    def f(self, n, name, value, idx=None):
        pos = self.abs_pos()
        if hasattr(self.obj, name) and self._get(name, idx) != value:
            nm = _fmt_name(name, idx)
            raise self.error(f"value {self._get(name, idx)} but {value} is fixed", nm,
                             shall=f"{nm} shall be equal to {value}")
        self._trace(pos, name, idx, f"f({n})", value)
        if n:
            self.bs.append(bitstring.Bits(uint=value, length=n))
        return value

    def u(self, n, name, lo=None, hi=None, idx=None):
        pos = self.abs_pos()
        v = self._int(name, idx, self._get(name, idx))
        self._check_range(name, idx, v, lo, hi, pos)
        if v < 0 or v >= (1 << n):
            raise self.error(f"value {v} does not fit in u({n})", _fmt_name(name, idx))
        self._trace(pos, name, idx, f"u({n})", v)
        if n:
            self.bs.append(bitstring.Bits(uint=v, length=n))
        return v

    def ue(self, name, lo=None, hi=None, idx=None):
        pos = self.abs_pos()
        v = self._int(name, idx, self._get(name, idx))
        self._check_range(name, idx, v, lo, hi, pos)
        if v < 0 or v > (1 << MAX_EG_LEADING_ZEROS) - 2:
            raise self.error(f"value {v} not representable as ue(v)", _fmt_name(name, idx))
        self._trace(pos, name, idx, "ue(v)", v)
        self.bs.append(bitstring.Bits(bin=ue_bits(v)))
        return v

    def se(self, name, lo=None, hi=None, idx=None):
        pos = self.abs_pos()
        v = self._int(name, idx, self._get(name, idx))
        self._check_range(name, idx, v, lo, hi, pos)
        k = se_to_ue(v)
        if k > (1 << MAX_EG_LEADING_ZEROS) - 2:
            raise self.error(f"value {v} not representable as se(v)", _fmt_name(name, idx))
        self._trace(pos, name, idx, "se(v)", v)
        self.bs.append(bitstring.Bits(bin=ue_bits(k)))
        return v

    def infer(self, name, value, idx=None):
        """Absent element: a value set on the object must equal the inferred one."""
        present = hasattr(self.obj, name) if idx is None else True
        if present:
            try:
                cur = self._get(name, idx)
            except BitstreamError:
                cur = value
            if cur is not None and cur != value:
                nm = _fmt_name(name, idx)
                raise self.error(f"value {cur} given for an absent element whose value is inferred to be {value}", nm)
        self._set(name, idx, value)
        return value

    def byte_aligned(self) -> bool:
        return len(self.bs) % 8 == 0

    def _zero_run(self, name):
        n = (-len(self.bs)) % 8
        if n == 0:
            return
        if self.trace is not None:
            self.trace.element(self.abs_pos(), name, f"f(1)x{n}", 0)
        self.bs.append(bitstring.Bits(uint=0, length=n))

    def byte_alignment(self):
        self._trace(self.abs_pos(), "alignment_bit_equal_to_one", None, "f(1)", 1)
        self.bs.append("0b1")
        self._zero_run("alignment_bit_equal_to_zero")

    def zero_alignment(self, name="alignment_zero_bit"):
        self._zero_run(name)

    def more_rbsp_data(self, name=None) -> bool:
        """Writer side: true while list ``name`` of the object has unwritten entries;
        for an optional structure ``name`` (not a list): whether the object has it."""
        arr = getattr(self.obj, name, None)
        if arr is not None and not isinstance(arr, (list, tuple)):
            return True
        arr = arr or []
        k = (id(self.obj), name)
        i = self._more_count.get(k, 0)
        if i < len(arr):
            self._more_count[k] = i + 1
            return True
        self._more_count.pop(k, None)
        return False

    def rbsp_trailing_bits(self):
        self._trace(self.abs_pos(), "rbsp_stop_one_bit", None, "f(1)", 1)
        self.bs.append("0b1")
        self._zero_run("rbsp_alignment_zero_bit")

    def bytes(self, name, n, idx=None, lo=None, hi=None):
        pos = self.abs_pos()
        v = self._get(name, idx)
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise self.error("value is not a byte string", _fmt_name(name, idx))
        v = bytes(v)
        if n is not None and len(v) != n:
            raise self.error(f"byte string has {len(v)} bytes, the syntax requires {n}",
                             _fmt_name(name, idx))
        if not self.byte_aligned():
            raise self.error("byte string not byte aligned", _fmt_name(name, idx))
        self._trace(pos, name, idx, "b(8)", _fmt_bytes(v))
        self.bs.append(v)
        return v

    def samples(self, name, shape, nbits, idx=None):
        pos = self.abs_pos()
        arr = np.asarray(self._get(name, idx))
        if tuple(arr.shape) != tuple(shape):
            raise self.error(f"sample array of shape {arr.shape}, the syntax requires {tuple(shape)}",
                             _fmt_name(name, idx))
        if arr.size and (arr.min() < 0 or int(arr.max()) >= (1 << nbits)):
            raise self.error(f"sample value out of range of u({nbits})", _fmt_name(name, idx),
                             shall=f"The value of {_fmt_name(name, idx)} shall be in the range of 0 to {(1 << nbits) - 1}, inclusive")
        if not self.byte_aligned():
            raise self.error("sample array not byte aligned", _fmt_name(name, idx))
        self._trace(pos, name, idx, f"u({nbits})",
                    f"<{'x'.join(map(str, shape))} samples md5={hashlib.md5(arr.astype('<u2').tobytes()).hexdigest()}>")
        packed = pack_samples(arr.reshape(-1), nbits)
        total = arr.size * nbits
        bits = bitstring.Bits(bytes=packed, length=total)
        self.bs.append(bits)
        return arr


# ---------------------------------------------------------------------------
# Vectorised sample packing (MSB first, u(n) per sample)
# ---------------------------------------------------------------------------

#: samples per block when packing or unpacking (a multiple of 8: every block starts on a byte)
_SAMPLE_BLOCK = 1 << 15


def pack_samples(values: np.ndarray, nbits: int) -> bytes:
    v = np.asarray(values).reshape(-1)
    if nbits == 8:
        return v.astype(np.uint8).tobytes()
    if nbits == 16:
        return v.astype(">u2").tobytes()
    out = []
    for s in range(0, len(v), _SAMPLE_BLOCK):     # in blocks: 16 bytes per sample at most
        two = v[s:s + _SAMPLE_BLOCK].astype(">u2").view(np.uint8).reshape(-1, 2)
        bits = np.unpackbits(two, axis=1)[:, 16 - nbits:]
        out.append(np.packbits(bits.reshape(-1)).tobytes())
    return b"".join(out)


def unpack_samples(raw: np.ndarray, count: int, nbits: int) -> np.ndarray:
    if nbits == 8:
        return raw[:count].astype(np.uint16)
    if nbits == 16:
        return raw[:2 * count].view(">u2").astype(np.uint16)
    out = np.empty(count, dtype=np.uint16)
    for s in range(0, count, _SAMPLE_BLOCK):      # in blocks: 16 bytes per sample at most
        n = min(_SAMPLE_BLOCK, count - s)
        b0 = s * nbits // 8
        bits = np.unpackbits(raw[b0:b0 + (n * nbits + 7) // 8])[:n * nbits].reshape(n, nbits)
        wide = np.zeros((n, 16), dtype=np.uint8)
        wide[:, 16 - nbits:] = bits
        out[s:s + n] = np.packbits(wide, axis=1).view(">u2").reshape(n)
    return out


def _sub(self, obj, name, cls=Struct, idx=None):
    """Child structure ``obj.name`` (created when reading)."""
    if self.reading:
        child = cls()
        if idx is None:
            setattr(obj, name, child)
        else:
            arr = getattr(obj, name, None)
            if arr is None:
                arr = []
                setattr(obj, name, arr)
            while len(arr) <= idx:
                arr.append(None)
            arr[idx] = child
        return child
    child = getattr(obj, name, None) if idx is None else getattr(obj, name)[idx]
    if child is None:
        raise self.error("sub-structure missing in the structure to be written", _fmt_name(name, idx))
    return child


_RW.sub = _sub
