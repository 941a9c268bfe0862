"""Picture I/O: PNG, raw planar YUV and YUV4MPEG2 (y4m), plus picture MD5s and CRC-32s.

A :class:`Picture` is a list of 2-D ``np.uint16`` sample planes with its
chroma format, bit depth and colour space.  Samples are never scaled or
converted between colour spaces here; conversion is not this module's job.

Component order
    ``colour_space == "ycbcr"``: component 0 = Y, 1 = Cb, 2 = Cr
    (chroma format "400" has only Y).
    ``colour_space == "rgb"``: component 0 = R, 1 = G, 2 = B (always "444").
    Note that HM/VTM map RGB to their internal component order as G, B, R;
    this module does *not*: planes are stored R, G, B.

File formats
    * PNG (:func:`read_png`, :func:`write_png`), via Pillow.  See those
      functions for the mapping of PNG colour types.
    * Raw planar YUV (:class:`YuvReader`, :class:`YuvWriter`, :func:`write_yuv`):
      frames of Y then Cb then Cr planes, no header.  Bit depth 8: one byte
      per sample; bit depth 9..16: two bytes per sample, little-endian (as
      HM/VTM).
    * YUV4MPEG2 (:class:`Y4mReader`, :class:`Y4mWriter`): a text header line,
      then per frame a ``FRAME`` line and planar data as in raw YUV
      (two bytes little-endian per sample above 8 bits, as written by FFmpeg).

Every :class:`PictureError` raised while reading or writing a file names the
file and, where relevant, the frame number, component and byte offset.
"""
from __future__ import annotations

import hashlib
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

__all__ = [
    "Picture", "PictureError",
    "read_png", "write_png",
    "YuvReader", "YuvWriter", "write_yuv",
    "Y4mReader", "Y4mWriter",
    "open_input", "write_output",
    "plane_hash_bytes", "plane_md5", "picture_md5", "plane_crc32", "picture_crc32",
    "CHROMA_FORMATS", "COLOUR_SPACES",
]

CHROMA_FORMATS = ("400", "420", "444")
COLOUR_SPACES = ("ycbcr", "rgb")
_MIN_BIT_DEPTH, _MAX_BIT_DEPTH = 8, 16


class PictureError(ValueError):
    """A picture or picture file is malformed, inconsistent or unsupported.

    The message starts with the location (file, frame, component, byte offset,
    line, whichever are known), then says what is wrong.  The parts are also
    available as attributes.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None,
                 frame: int | None = None, component: str | None = None,
                 offset: int | None = None, line: int | None = None):
        self.message = message
        self.path = os.fspath(path) if path is not None else None
        self.frame = frame
        self.component = component
        self.offset = offset
        self.line = line
        loc = []
        if self.path is not None:
            loc.append(f"{self.path}:{line}" if line is not None else self.path)
        elif line is not None:
            loc.append(f"line {line}")
        if frame is not None:
            loc.append(f"frame {frame}")
        if component is not None:
            loc.append(f"component {component}")
        if offset is not None:
            loc.append(f"byte offset {offset}")
        super().__init__(f"{', '.join(loc)}: {message}" if loc else message)


# --------------------------------------------------------------------------
# Picture
# --------------------------------------------------------------------------

def _chroma_shape(chroma_format: str, width: int, height: int) -> tuple[int, int] | None:
    """(rows, cols) of a chroma plane, or None for 4:0:0."""
    if chroma_format == "400":
        return None
    if chroma_format == "420":
        return (height + 1) // 2, (width + 1) // 2
    return height, width


def _num_components(chroma_format: str) -> int:
    return 1 if chroma_format == "400" else 3


def _plane_shapes(chroma_format: str, width: int, height: int) -> list[tuple[int, int]]:
    c = _chroma_shape(chroma_format, width, height)
    return [(height, width)] if c is None else [(height, width), c, c]


def _component_names(colour_space: str, chroma_format: str) -> tuple[str, ...]:
    if colour_space == "rgb":
        return ("R", "G", "B")
    return ("Y",) if chroma_format == "400" else ("Y", "Cb", "Cr")


@dataclass(eq=False)
class Picture:
    """One picture: sample planes plus format.

    planes
        2-D ``np.uint16`` arrays of shape (rows, columns).
        For ``"ycbcr"``: component 0 = Y, 1 = Cb, 2 = Cr (only Y for "400").
        For ``"rgb"``: component 0 = R, 1 = G, 2 = B (not HM's G, B, R),
        and the chroma format must be ``"444"``.
        4:2:0 chroma planes are ceil(width/2) x ceil(height/2).
    chroma_format
        ``"400"``, ``"420"`` or ``"444"``.
    bit_depth
        8..16; every sample must be < 2**bit_depth.
    colour_space
        ``"ycbcr"`` or ``"rgb"``.

    Equality (``==``) compares the format and every sample.
    """

    planes: list[np.ndarray]
    chroma_format: str
    bit_depth: int
    colour_space: str = "ycbcr"

    @property
    def width(self) -> int:
        """Luma (component 0) width in samples."""
        return int(self.planes[0].shape[1])

    @property
    def height(self) -> int:
        """Luma (component 0) height in samples."""
        return int(self.planes[0].shape[0])

    @property
    def component_names(self) -> tuple[str, ...]:
        """("Y", "Cb", "Cr"), ("Y",) or ("R", "G", "B")."""
        return _component_names(self.colour_space, self.chroma_format)

    def validate(self, source: str | os.PathLike | None = None,
                 frame: int | None = None) -> "Picture":
        """Check format, plane count, shapes, dtype and sample range.

        ``source``/``frame`` only label the error message (e.g. the file the
        picture came from).  Returns ``self``; raises :class:`PictureError`.
        """
        def fail(msg, component=None):
            raise PictureError(msg, path=source if source is not None else "<picture>",
                               frame=frame, component=component)

        if self.chroma_format not in CHROMA_FORMATS:
            fail(f"chroma_format {self.chroma_format!r} is not one of {', '.join(CHROMA_FORMATS)}")
        if self.colour_space not in COLOUR_SPACES:
            fail(f"colour_space {self.colour_space!r} is not one of {', '.join(COLOUR_SPACES)}")
        if self.colour_space == "rgb" and self.chroma_format != "444":
            fail(f'colour_space "rgb" requires chroma_format "444", not {self.chroma_format!r}')
        if (not isinstance(self.bit_depth, (int, np.integer)) or isinstance(self.bit_depth, bool)
                or not _MIN_BIT_DEPTH <= self.bit_depth <= _MAX_BIT_DEPTH):
            fail(f"bit_depth {self.bit_depth!r} is not an integer in "
                 f"{_MIN_BIT_DEPTH}..{_MAX_BIT_DEPTH}")
        if not isinstance(self.planes, (list, tuple)):
            fail(f"planes must be a list of 2-D arrays, not {type(self.planes).__name__}")
        n = _num_components(self.chroma_format)
        if len(self.planes) != n:
            fail(f"chroma_format {self.chroma_format} needs {n} plane(s), got {len(self.planes)}")
        names = self.component_names
        for name, p in zip(names, self.planes):
            if not isinstance(p, np.ndarray) or p.ndim != 2:
                fail(f"plane is not a 2-D numpy array "
                     f"({type(p).__name__}, ndim={getattr(p, 'ndim', '?')})", name)
            if p.dtype != np.uint16:
                fail(f"plane dtype is {p.dtype}, must be uint16", name)
        h, w = self.planes[0].shape
        if w <= 0 or h <= 0:
            fail(f"picture size {w}x{h} is empty")
        for name, p, shape in zip(names, self.planes, _plane_shapes(self.chroma_format, w, h)):
            if p.shape != shape:
                fail(f"plane is {p.shape[1]}x{p.shape[0]} (WxH), expected {shape[1]}x{shape[0]} "
                     f"for a {w}x{h} {self.chroma_format} picture", name)
        for name, p in zip(names, self.planes):
            _check_range(p, int(self.bit_depth), path=source if source is not None else "<picture>",
                         frame=frame, component=name)
        return self

    def __eq__(self, other):
        if not isinstance(other, Picture):
            return NotImplemented
        return (self.chroma_format == other.chroma_format
                and self.bit_depth == other.bit_depth
                and self.colour_space == other.colour_space
                and len(self.planes) == len(other.planes)
                and all(a.shape == b.shape and np.array_equal(a, b)
                        for a, b in zip(self.planes, other.planes)))

    def __repr__(self):
        shapes = ", ".join(f"{p.shape[1]}x{p.shape[0]}" for p in self.planes)
        return (f"Picture({shapes}, chroma_format={self.chroma_format!r}, "
                f"bit_depth={self.bit_depth}, colour_space={self.colour_space!r})")


def _check_range(plane: np.ndarray, bit_depth: int, *, path, frame, component) -> None:
    limit = 1 << bit_depth
    if plane.size and int(plane.max()) >= limit:
        bad = np.argwhere(plane >= limit)[0]
        y, x = int(bad[0]), int(bad[1])
        raise PictureError(
            f"sample value {int(plane[y, x])} at (x={x}, y={y}) exceeds the "
            f"{bit_depth}-bit maximum {limit - 1}",
            path=path, frame=frame, component=component)


def _check_params(path, width, height, chroma_format, bit_depth) -> None:
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
            raise PictureError(f"{name} must be a positive integer, got {v!r}", path=path)
    if chroma_format not in CHROMA_FORMATS:
        raise PictureError(f"chroma format {chroma_format!r} is not one of "
                           f"{', '.join(CHROMA_FORMATS)}", path=path)
    if (not isinstance(bit_depth, (int, np.integer)) or isinstance(bit_depth, bool)
            or not _MIN_BIT_DEPTH <= bit_depth <= _MAX_BIT_DEPTH):
        raise PictureError(f"bit depth must be an integer in {_MIN_BIT_DEPTH}..{_MAX_BIT_DEPTH}, "
                           f"got {bit_depth!r}", path=path)


def _frame_bytes(width, height, chroma_format, bit_depth) -> int:
    bps = 1 if bit_depth <= 8 else 2
    return sum(r * c for r, c in _plane_shapes(chroma_format, width, height)) * bps


def _decode_planes(buf: bytes, width, height, chroma_format, bit_depth, colour_space,
                   *, path, frame) -> Picture:
    """Planar bytes (as in raw YUV / y4m) -> validated Picture."""
    dt = np.dtype(np.uint8) if bit_depth <= 8 else np.dtype("<u2")
    planes = []
    pos = 0
    names = _component_names(colour_space, chroma_format)
    for name, (r, c) in zip(names, _plane_shapes(chroma_format, width, height)):
        n = r * c
        a = np.frombuffer(buf, dtype=dt, count=n, offset=pos).reshape(r, c).astype(np.uint16)
        pos += n * dt.itemsize
        if bit_depth > 8:
            _check_range(a, bit_depth, path=path, frame=frame, component=name)
        planes.append(a)
    return Picture(planes, chroma_format, bit_depth, colour_space)


def _encode_planes(pic: Picture) -> bytes:
    dt = np.uint8 if pic.bit_depth <= 8 else np.dtype("<u2")
    return b"".join(np.ascontiguousarray(p, dtype=dt).tobytes() for p in pic.planes)


# --------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}


def _png_header(path) -> tuple[int, int, int, int | None]:
    """(bit depth, colour type, interlace, sBIT grey significant bits or None)."""
    with open(path, "rb") as f:
        sig = f.read(8)
        if sig != _PNG_SIG:
            raise PictureError("not a PNG file (bad signature)", path=path, offset=0)
        ihdr = None
        sbit = None
        while True:
            pos = f.tell()
            head = f.read(8)
            if len(head) < 8:
                raise PictureError("truncated PNG: no IDAT chunk", path=path, offset=pos)
            length, ctype = struct.unpack(">I4s", head)
            if ctype == b"IDAT" or ctype == b"IEND":
                break
            data = f.read(length)
            if len(data) < length:
                raise PictureError(f"truncated PNG chunk {ctype!r}", path=path, offset=pos)
            f.seek(4, os.SEEK_CUR)  # CRC (Pillow checks it)
            if ctype == b"IHDR":
                if length != 13:
                    raise PictureError("bad PNG IHDR chunk length", path=path, offset=pos)
                ihdr = struct.unpack(">IIBBBBB", data)
            elif ctype == b"sBIT" and length >= 1:
                sbit = data[0]
        if ihdr is None:
            raise PictureError("PNG has no IHDR chunk", path=path, offset=8)
        return ihdr[2], ihdr[3], ihdr[6], sbit


def read_png(path) -> Picture:
    """Read a PNG file into a :class:`Picture`.

    * 8-bit RGB -> colour_space "rgb", "444", bit_depth 8 (planes R, G, B).
    * 8-bit RGBA -> as RGB, **the alpha channel is dropped** (a
      ``UserWarning`` is issued if it is not fully opaque).
    * palette -> converted to RGB (transparency dropped as for RGBA).
    * greyscale (1/2/4/8 bits) -> "ycbcr" "400" bit_depth 8 (low depths scaled
      to 0..255 by Pillow); greyscale+alpha: alpha dropped.
    * 16-bit greyscale -> "400" bit_depth 16, or, if the file has an sBIT chunk
      with 9..15 significant bits ``s`` (as :func:`write_png` writes), samples
      shifted right by 16-s and bit_depth ``s``.
    * 16-bit RGB, RGBA or greyscale+alpha: :class:`PictureError` -- Pillow only
      decodes them to 8 bits per sample, which would silently lose precision.
    """
    from PIL import Image

    bd, ct, _interlace, sbit = _png_header(path)
    if bd == 16 and ct != 0:
        raise PictureError(
            f"16-bit {_PNG_COLOUR_TYPES.get(ct, ct)} PNG is not supported: Pillow decodes it to "
            f"8 bits per sample only, which would lose precision; convert it to 16-bit "
            f"greyscale PNG, raw YUV or y4m instead", path=path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P" or mode == "PA":
                im = im.convert("RGBA" if (mode == "PA" or "transparency" in im.info) else "RGB")
                mode = im.mode
            elif mode == "1":
                im = im.convert("L")
                mode = "L"
            arr = np.array(im)
    except PictureError:
        raise
    except Exception as e:  # Pillow raises many types for corrupt files
        raise PictureError(f"cannot decode PNG: {e}", path=path) from e

    if mode in ("RGBA", "LA"):
        alpha = arr[..., -1]
        if alpha.size and int(alpha.min()) != 255:
            warnings.warn(f"{os.fspath(path)}: PNG alpha channel is not opaque and is dropped",
                          UserWarning, stacklevel=2)
        arr = arr[..., :-1]
        mode = mode[:-1]
    if mode == "RGB":
        planes = [np.ascontiguousarray(arr[..., i], dtype=np.uint16) for i in range(3)]
        pic = Picture(planes, "444", 8, "rgb")
    elif mode == "L":
        pic = Picture([np.asarray(arr[..., 0] if arr.ndim == 3 else arr, dtype=np.uint16)],
                      "400", 8, "ycbcr")
    elif mode.startswith("I"):  # "I;16", "I;16B", "I" (16-bit greyscale)
        a = np.asarray(arr)
        if a.size and (int(a.min()) < 0 or int(a.max()) > 0xFFFF):
            raise PictureError(f"greyscale samples outside 0..65535 (Pillow mode {mode})", path=path)
        a = a.astype(np.uint16)
        depth = 16
        if bd == 16 and sbit is not None and 9 <= sbit <= 15:
            depth = sbit
            a = a >> np.uint16(16 - sbit)
        pic = Picture([np.ascontiguousarray(a)], "400", depth, "ycbcr")
    else:
        raise PictureError(f"unsupported PNG image mode {mode!r}", path=path)
    return pic.validate(path)


def write_png(path, pic: Picture) -> None:
    """Write a picture as PNG.

    * "rgb" 8-bit -> 8-bit RGB PNG.
    * "400" 8-bit -> 8-bit greyscale PNG.
    * "400" 9..16-bit -> 16-bit greyscale PNG; below 16 bits samples are
      shifted left by 16-bit_depth and an sBIT chunk records the bit depth, so
      :func:`read_png` restores the original picture.
    * "ycbcr" 4:2:0 / 4:4:4 -> :class:`PictureError`: write YUV/y4m instead
      (colour conversion is not this module's job).
    * "rgb" above 8 bits -> :class:`PictureError` (Pillow cannot write 16-bit RGB).
    """
    from PIL import Image, PngImagePlugin

    pic.validate(path)
    if pic.colour_space == "ycbcr" and pic.chroma_format != "400":
        raise PictureError(
            f"cannot write a YCbCr {pic.chroma_format} picture as PNG (PNG holds RGB or "
            f"greyscale); write it as .yuv or .y4m, or convert it to RGB first", path=path)
    if pic.colour_space == "rgb":
        if pic.bit_depth != 8:
            raise PictureError(
                f"cannot write {pic.bit_depth}-bit RGB as PNG: Pillow writes only 8-bit RGB; "
                f"write .yuv/.y4m or reduce the bit depth first", path=path)
        arr = np.stack(pic.planes, axis=-1).astype(np.uint8)
        im = Image.fromarray(arr)
        info = None
    elif pic.bit_depth == 8:
        im = Image.fromarray(pic.planes[0].astype(np.uint8))
        info = None
    else:
        a = (pic.planes[0] << np.uint16(16 - pic.bit_depth)).astype(np.uint16)
        im = Image.fromarray(np.ascontiguousarray(a))
        info = None
        if pic.bit_depth < 16:
            info = PngImagePlugin.PngInfo()
            info.add(b"sBIT", bytes([pic.bit_depth]))
    try:
        # zlib level 1: the samples are lossless at any level; level 6 (Pillow's default)
        # took 0.15 s of a 0.9 s decode of a 768x512 picture for 2-4 % smaller files
        im.save(path, format="PNG", compress_level=1, **({"pnginfo": info} if info else {}))
    except OSError as e:
        raise PictureError(f"cannot write PNG: {e}", path=path) from e


# --------------------------------------------------------------------------
# Raw YUV
# --------------------------------------------------------------------------

class YuvReader:
    """Frames of a raw planar YUV file (no header), as HM/VTM read them.

    Samples are 1 byte at bit depth 8, else 2 bytes little-endian.  The file
    size must be a whole multiple of the frame size.  ``start_frame`` skips
    frames; ``max_frames`` (None = all) limits how many are read.
    ``total_frames`` is the number of frames in the file, ``num_frames`` (and
    ``len()``) the number this reader yields.  Iterating yields validated
    "ycbcr" :class:`Picture` objects; it may be repeated.
    """

    def __init__(self, path, width: int, height: int, chroma_format: str, bit_depth: int,
                 *, start_frame: int = 0, max_frames: int | None = None):
        self.path = os.fspath(path)
        _check_params(self.path, width, height, chroma_format, bit_depth)
        self.width, self.height = int(width), int(height)
        self.chroma_format, self.bit_depth = chroma_format, int(bit_depth)
        self.frame_size = _frame_bytes(self.width, self.height, chroma_format, self.bit_depth)
        try:
            size = os.path.getsize(self.path)
        except OSError as e:
            raise PictureError(f"cannot open YUV file: {e.strerror or e}", path=self.path) from e
        total, rem = divmod(size, self.frame_size)
        if rem:
            raise PictureError(
                f"file size {size} bytes is not a whole number of frames: frame size is "
                f"{self.frame_size} bytes ({self.width}x{self.height} {chroma_format} "
                f"{self.bit_depth}-bit), {total} whole frame(s) leave a remainder of {rem} bytes; "
                f"check width, height, chroma format and bit depth", path=self.path)
        self.total_frames = total
        if not isinstance(start_frame, int) or start_frame < 0:
            raise PictureError(f"start_frame must be >= 0, got {start_frame!r}", path=self.path)
        if start_frame > total:
            raise PictureError(f"start_frame {start_frame} is beyond the end of the file "
                               f"({total} frames)", path=self.path)
        if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 0):
            raise PictureError(f"max_frames must be >= 0 or None, got {max_frames!r}",
                               path=self.path)
        self.start_frame = start_frame
        avail = total - start_frame
        self._count = avail if max_frames is None else min(avail, max_frames)

    @property
    def num_frames(self) -> int:
        """Number of frames this reader yields (after start_frame/max_frames)."""
        return self._count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Picture]:
        with open(self.path, "rb") as f:
            f.seek(self.start_frame * self.frame_size)
            for i in range(self.start_frame, self.start_frame + self._count):
                buf = f.read(self.frame_size)
                if len(buf) != self.frame_size:
                    raise PictureError(f"file shrank while reading: got {len(buf)} of "
                                       f"{self.frame_size} bytes", path=self.path, frame=i,
                                       offset=i * self.frame_size)
                yield _decode_planes(buf, self.width, self.height, self.chroma_format,
                                     self.bit_depth, "ycbcr", path=self.path, frame=i)


class _FileWriter:
    """Close / context-manager behaviour shared by the picture file writers."""

    _f = None

    def close(self) -> None:
        if self._f is not None and not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class YuvWriter(_FileWriter):
    """Write "ycbcr" pictures to a raw planar YUV file (truncates it).

    All pictures must share size, chroma format and bit depth (the file has
    no header to record changes).  Use as a context manager or call close().
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._format = None
        self.frames_written = 0
        try:
            self._f = open(self.path, "wb")
        except OSError as e:
            raise PictureError(f"cannot create YUV file: {e.strerror or e}", path=self.path) from e

    def write(self, pic: Picture) -> None:
        frame = self.frames_written
        pic.validate(self.path, frame)
        if pic.colour_space != "ycbcr" and not self.path.lower().endswith(".rgb"):
            raise PictureError(
                f"raw YUV holds YCbCr pictures; got colour_space {pic.colour_space!r} "
                f"(write .rgb for raw planar R, G, B, or PNG)", path=self.path, frame=frame)
        fmt = (pic.width, pic.height, pic.chroma_format, pic.bit_depth)
        if self._format is None:
            self._format = fmt
        elif fmt != self._format:
            raise PictureError(
                "picture format {}x{} {} {}-bit differs from the first frame's {}x{} {} {}-bit"
                .format(*fmt, *self._format), path=self.path, frame=frame)
        self._f.write(_encode_planes(pic))
        self.frames_written += 1



def write_yuv(path, pics: Iterable[Picture]) -> int:
    """Write pictures to a raw YUV file; returns the number of frames written."""
    with YuvWriter(path) as w:
        for p in pics:
            w.write(p)
        return w.frames_written


# --------------------------------------------------------------------------
# YUV4MPEG2
# --------------------------------------------------------------------------

_Y4M_MAGIC = b"YUV4MPEG2"
_Y4M_MAX_LINE = 4096
_Y4M_C_8BIT = {"420": "420", "420jpeg": "420", "420paldv": "420", "420mpeg2": "420",
               "444": "444", "mono": "400"}
_Y4M_C_HIGH = re.compile(r"^(?:(420|444)p|(mono))(\d{1,2})$")


def _y4m_colourspace(tag: str) -> tuple[str, int] | None:
    """C tag -> (chroma_format, bit_depth), or None if unsupported."""
    if tag in _Y4M_C_8BIT:
        return _Y4M_C_8BIT[tag], 8
    m = _Y4M_C_HIGH.match(tag)
    if not m or not 9 <= int(m.group(3)) <= 16:
        return None
    return (m.group(1) or "400"), int(m.group(3))


def _y4m_ctag(chroma_format: str, bit_depth: int) -> str:
    if chroma_format == "400":
        return "mono" if bit_depth == 8 else f"mono{bit_depth}"
    if chroma_format == "420":
        return "420jpeg" if bit_depth == 8 else f"420p{bit_depth}"
    return "444" if bit_depth == 8 else f"444p{bit_depth}"


def _read_line(f, path, what, frame=None) -> tuple[bytes, int]:
    pos = f.tell()
    line = f.readline(_Y4M_MAX_LINE + 1)
    if not line.endswith(b"\n"):
        if not line:
            raise PictureError(f"end of file where a {what} was expected", path=path,
                               frame=frame, offset=pos)
        if len(line) <= _Y4M_MAX_LINE:
            raise PictureError(f"file ends inside the {what} (no terminating newline)",
                               path=path, frame=frame, offset=pos)
        raise PictureError(f"{what} is not terminated by a newline within "
                           f"{_Y4M_MAX_LINE} bytes", path=path, frame=frame, offset=pos)
    return line[:-1], pos


def _ratio(value: str, tag: str, path, allow_zero: bool) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+):(\d+)", value)
    if not m:
        raise PictureError(f"y4m header tag {tag}{value!r} is not of the form num:den",
                           path=path, offset=0)
    num, den = int(m.group(1)), int(m.group(2))
    if not allow_zero and (num == 0 or den == 0):
        raise PictureError(f"y4m header tag {tag}{value} has a zero term", path=path, offset=0)
    return num, den


class Y4mReader:
    """Frames of a YUV4MPEG2 file.

    Header tags: W, H (required), F (frame rate num:den; missing or 0:0 means
    unknown and is reported as (25, 1), as FFmpeg does), I (interlacing,
    recorded in ``interlace`` but frames are returned as progressive
    pictures), A (pixel aspect ratio), C (colour space; default "420jpeg"),
    X (ignored).  Supported C values: 420, 420jpeg, 420paldv, 420mpeg2
    (chroma siting is not recorded), 420pN, 444, 444pN, mono, monoN, for
    N = 9..16.  Above 8 bits samples are 2 bytes little-endian.

    ``start_frame`` and ``max_frames`` work as for :class:`YuvReader`.
    ``num_frames`` scans the FRAME headers (cheap: frame data is skipped).
    """

    def __init__(self, path, *, start_frame: int = 0, max_frames: int | None = None):
        self.path = os.fspath(path)
        if not isinstance(start_frame, int) or start_frame < 0:
            raise PictureError(f"start_frame must be >= 0, got {start_frame!r}", path=self.path)
        if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 0):
            raise PictureError(f"max_frames must be >= 0 or None, got {max_frames!r}",
                               path=self.path)
        self.start_frame, self.max_frames = start_frame, max_frames
        try:
            with open(self.path, "rb") as f:
                self._parse_header(f)
                self._data_start = f.tell()
        except OSError as e:
            raise PictureError(f"cannot open y4m file: {e.strerror or e}", path=self.path) from e
        self.frame_size = _frame_bytes(self.width, self.height, self.chroma_format,
                                       self.bit_depth)
        self._num_frames = None

    def _parse_header(self, f) -> None:
        path = self.path
        head = f.read(len(_Y4M_MAGIC) + 1)
        if head[:len(_Y4M_MAGIC)] != _Y4M_MAGIC or head[-1:] not in (b" ", b"\n"):
            raise PictureError(f"not a y4m file: it does not start with 'YUV4MPEG2 ' "
                               f"(found {head!r})", path=path, offset=0)
        f.seek(0)
        line = _read_line(f, path, "y4m header")[0]
        rest = line[len(_Y4M_MAGIC):]
        try:
            text = rest.decode("ascii")
        except UnicodeDecodeError:
            raise PictureError("y4m header contains non-ASCII bytes", path=path, offset=0) from None
        tags: dict[str, str] = {}
        for tok in text.split():
            key, val = tok[0], tok[1:]
            if key == "X":
                continue
            if key not in "WHFIAC":
                raise PictureError(f"unknown y4m header tag {tok!r} (known: W H F I A C X)",
                                   path=path, offset=0)
            if key in tags:
                raise PictureError(f"y4m header tag {key} appears twice", path=path, offset=0)
            tags[key] = val
        for k in "WH":
            if k not in tags:
                raise PictureError(f"y4m header has no {k} ({'width' if k == 'W' else 'height'}) "
                                   f"tag", path=path, offset=0)
            if not tags[k].isdigit() or int(tags[k]) <= 0:
                raise PictureError(f"y4m header tag {k}{tags[k]} is not a positive integer",
                                   path=path, offset=0)
        self.width, self.height = int(tags["W"]), int(tags["H"])
        fr = _ratio(tags["F"], "F", path, allow_zero=True) if "F" in tags else (0, 0)
        self.frame_rate = (25, 1) if 0 in fr else fr
        self.pixel_aspect = _ratio(tags["A"], "A", path, allow_zero=True) if "A" in tags else (0, 0)
        self.interlace = tags.get("I", "?")
        if self.interlace not in ("p", "t", "b", "m", "?"):
            raise PictureError(f"y4m header tag I{self.interlace} is not one of Ip It Ib Im I?",
                               path=path, offset=0)
        self.colour_tag = tags.get("C", "420jpeg")
        cs = _y4m_colourspace(self.colour_tag)
        if cs is None:
            raise PictureError(
                f"unsupported y4m colour space C{self.colour_tag} (supported: 420, 420jpeg, "
                f"420paldv, 420mpeg2, 420pN, 444, 444pN, mono, monoN for N=9..16)",
                path=path, offset=0)
        self.chroma_format, self.bit_depth = cs

    def _frame_header(self, f, index) -> None:
        line, pos = _read_line(f, self.path, "FRAME header", index)
        if not (line == b"FRAME" or line.startswith(b"FRAME ")):
            raise PictureError(f"expected a 'FRAME' header, found {line[:20]!r}",
                               path=self.path, frame=index, offset=pos)

    def __iter__(self) -> Iterator[Picture]:
        yielded = 0
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(self._data_start)
            index = 0
            while self.max_frames is None or yielded < self.max_frames:
                if f.tell() >= size:
                    if index < self.start_frame:
                        raise PictureError(f"start_frame {self.start_frame} is beyond the end "
                                           f"of the file ({index} frames)", path=self.path)
                    break
                self._frame_header(f, index)
                pos = f.tell()
                if index < self.start_frame:
                    f.seek(self.frame_size, os.SEEK_CUR)
                    if f.tell() > size:
                        raise PictureError(f"truncated frame: data ends before {self.frame_size} "
                                           f"bytes", path=self.path, frame=index, offset=pos)
                    index += 1
                    continue
                buf = f.read(self.frame_size)
                if len(buf) != self.frame_size:
                    raise PictureError(f"truncated frame: got {len(buf)} of {self.frame_size} "
                                       f"bytes", path=self.path, frame=index, offset=pos)
                yield _decode_planes(buf, self.width, self.height, self.chroma_format,
                                     self.bit_depth, "ycbcr", path=self.path, frame=index)
                yielded += 1
                index += 1

    @property
    def total_frames(self) -> int:
        """Number of frames in the file (scans FRAME headers; checks truncation)."""
        if self._num_frames is None:
            size = os.path.getsize(self.path)
            n = 0
            with open(self.path, "rb") as f:
                f.seek(self._data_start)
                while f.tell() < size:
                    self._frame_header(f, n)
                    pos = f.tell()
                    if pos + self.frame_size > size:
                        raise PictureError(
                            f"truncated frame: {size - pos} of {self.frame_size} bytes",
                            path=self.path, frame=n, offset=pos)
                    f.seek(self.frame_size, os.SEEK_CUR)
                    n += 1
            self._num_frames = n
        return self._num_frames

    @property
    def num_frames(self) -> int:
        """Number of frames this reader yields (after start_frame/max_frames)."""
        avail = max(0, self.total_frames - self.start_frame)
        return avail if self.max_frames is None else min(avail, self.max_frames)

    def __len__(self) -> int:
        return self.num_frames


class Y4mWriter(_FileWriter):
    """Write "ycbcr" pictures to a YUV4MPEG2 file.

    The header (``Ip A1:1``, C tag 420jpeg/420pN, 444/444pN, mono/monoN) is
    written at construction.  Every picture must match the declared format.
    """

    def __init__(self, path, width: int, height: int, chroma_format: str, bit_depth: int,
                 fps: tuple[int, int] = (25, 1)):
        self.path = os.fspath(path)
        _check_params(self.path, width, height, chroma_format, bit_depth)
        try:
            num, den = (int(x) for x in fps)
        except (TypeError, ValueError):
            raise PictureError(f"fps must be a (num, den) pair, got {fps!r}",
                               path=self.path) from None
        if num <= 0 or den <= 0:
            raise PictureError(f"fps {num}:{den} must have positive terms", path=self.path)
        self.width, self.height = int(width), int(height)
        self.chroma_format, self.bit_depth = chroma_format, int(bit_depth)
        self.fps = (num, den)
        self.frames_written = 0
        try:
            self._f = open(self.path, "wb")
        except OSError as e:
            raise PictureError(f"cannot create y4m file: {e.strerror or e}", path=self.path) from e
        self._f.write(f"YUV4MPEG2 W{self.width} H{self.height} F{num}:{den} Ip A1:1 "
                      f"C{_y4m_ctag(chroma_format, self.bit_depth)}\n".encode("ascii"))

    def write(self, pic: Picture) -> None:
        frame = self.frames_written
        pic.validate(self.path, frame)
        if pic.colour_space != "ycbcr":
            raise PictureError(f"y4m holds YCbCr pictures; got colour_space "
                               f"{pic.colour_space!r}", path=self.path, frame=frame)
        got = (pic.width, pic.height, pic.chroma_format, pic.bit_depth)
        want = (self.width, self.height, self.chroma_format, self.bit_depth)
        if got != want:
            raise PictureError("picture format {}x{} {} {}-bit differs from the file's "
                               "{}x{} {} {}-bit".format(*got, *want), path=self.path, frame=frame)
        self._f.write(b"FRAME\n")
        self._f.write(_encode_planes(pic))
        self.frames_written += 1



# --------------------------------------------------------------------------
# Dispatch by extension
# --------------------------------------------------------------------------

def _ext(path) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def _check_given(path, actual: dict, given: dict) -> None:
    bad = [f"{k}={given[k]!r} but the file has {actual[k]!r}"
           for k in given if given[k] is not None and given[k] != actual[k]]
    if bad:
        raise PictureError("requested format does not match the file: " + "; ".join(bad),
                           path=path)


def open_input(path, *, width: int | None = None, height: int | None = None,
               chroma_format: str | None = None, bit_depth: int | None = None,
               start_frame: int = 0, max_frames: int | None = None) -> Iterator[Picture]:
    """Pictures from ``path``, chosen by extension (case-insensitive).

    * ``.png``: one picture.
    * ``.y4m``: format from the header.
    * ``.yuv``: width, height, chroma_format and bit_depth are all required.

    For .png and .y4m any of width/height/chroma_format/bit_depth that is
    given must match the file, else :class:`PictureError`.  The file is
    opened and checked before this returns; frames are read lazily.
    """
    ext = _ext(path)
    given = dict(width=width, height=height, chroma_format=chroma_format, bit_depth=bit_depth)
    if ext == ".yuv":
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise PictureError(f"raw .yuv input needs {', '.join(missing)} (a .yuv file has no "
                               f"header)", path=path)
        return iter(YuvReader(path, width, height, chroma_format, bit_depth,
                              start_frame=start_frame, max_frames=max_frames))
    if ext == ".y4m":
        r = Y4mReader(path, start_frame=start_frame, max_frames=max_frames)
        _check_given(path, dict(width=r.width, height=r.height,
                                chroma_format=r.chroma_format, bit_depth=r.bit_depth), given)
        return iter(r)
    if ext == ".png":
        pic = read_png(path)
        _check_given(path, dict(width=pic.width, height=pic.height,
                                chroma_format=pic.chroma_format, bit_depth=pic.bit_depth), given)
        pics = [pic][start_frame:]
        if max_frames is not None:
            pics = pics[:max_frames]
        return iter(pics)
    raise PictureError(f"unknown input file extension {ext or '(none)'!r}; supported: "
                       f".png, .y4m, .yuv", path=path)


def write_output(path, pics: Iterable[Picture], *, fps: tuple[int, int] = (25, 1)) -> int:
    """Write pictures to ``path`` by extension; returns the number written.

    * ``.png``: exactly one picture (see :func:`write_png`).
    * ``.yuv``: raw YUV (:class:`YuvWriter`).
    * ``.y4m``: format taken from the first picture, frame rate ``fps``.
    """
    ext = _ext(path)
    if ext == ".png":
        it = iter(pics)
        first = next(it, None)
        if first is None:
            raise PictureError("no picture to write; a .png output takes exactly one", path=path)
        if next(it, None) is not None:
            raise PictureError("more than one picture to write; a .png output takes exactly "
                               "one (write .yuv or .y4m for sequences)", path=path)
        write_png(path, first)
        return 1
    if ext in (".yuv", ".rgb"):   # .rgb: raw planar R, G, B planes (4:4:4)
        return write_yuv(path, pics)
    if ext == ".y4m":
        it = iter(pics)
        first = next(it, None)
        if first is None:
            raise PictureError("no picture to write (the y4m header needs the format of the "
                               "first picture)", path=path)
        first.validate(path, 0)
        with Y4mWriter(path, first.width, first.height, first.chroma_format,
                       first.bit_depth, fps=fps) as w:
            w.write(first)
            for p in it:
                w.write(p)
            return w.frames_written
    raise PictureError(f"unknown output file extension {ext or '(none)'!r}; supported: "
                       f".png, .y4m, .yuv", path=path)


# --------------------------------------------------------------------------
# MD5 and CRC-32 (decoded picture hash, clause 7.8; the H.265/H.266 SEI)
# --------------------------------------------------------------------------

def plane_hash_bytes(plane: np.ndarray, bit_depth: int, what: str = "plane_md5") -> bytes:
    """The bytes the decoded picture hash covers (7.8): the samples of a plane
    in raster order, each as 1 byte if bit_depth <= 8, else 2 bytes
    little-endian.  Raises :class:`PictureError` for a sample >= 2**bit_depth
    (or a negative one) rather than hashing a truncated value."""
    a = np.asarray(plane)
    if a.ndim != 2:
        raise PictureError(f"{what} needs a 2-D plane, got ndim={a.ndim}")
    if not 1 <= bit_depth <= 16:
        raise PictureError(f"{what}: bit depth {bit_depth} outside 1..16")
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= (1 << bit_depth):
            raise PictureError(f"{what}: sample values {lo}..{hi} outside the "
                               f"{bit_depth}-bit range 0..{(1 << bit_depth) - 1}")
    dt = np.uint8 if bit_depth <= 8 else np.dtype("<u2")
    return np.ascontiguousarray(a, dtype=dt).tobytes()


def plane_md5(plane: np.ndarray, bit_depth: int) -> bytes:
    """MD5 of a sample plane as in the VVC/HEVC decoded picture hash SEI
    (dph_hash_type 0): the MD5 of :func:`plane_hash_bytes`."""
    return hashlib.md5(plane_hash_bytes(plane, bit_depth, "plane_md5")).digest()


def plane_crc32(plane: np.ndarray, bit_depth: int) -> int:
    """CRC-32 of a sample plane (dph_hash_type 1, clause 7.8): the CRC of
    ISO-HDLC / IEEE 802.3 (zlib.crc32: reflected polynomial 0xEDB88320, initial
    value and final XOR 0xFFFFFFFF) of :func:`plane_hash_bytes`."""
    return zlib.crc32(plane_hash_bytes(plane, bit_depth, "plane_crc32")) & 0xFFFFFFFF


def picture_md5(pic: Picture) -> list[bytes]:
    """One :func:`plane_md5` per component, in the picture's component order."""
    return [plane_md5(p, pic.bit_depth) for p in pic.planes]


def picture_crc32(pic: Picture) -> list[int]:
    """One :func:`plane_crc32` per component, in the picture's component order."""
    return [plane_crc32(p, pic.bit_depth) for p in pic.planes]
