"""Inner encoding (non-normative): HEVC (x265) or VVC (vvenc) through ffmpeg,
with the CTC coding structures (AI, RA, LD).  Decoding: refsw.decoder.track2.inner (T2.2).
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field

import numpy as np

from ...decoder.track2.inner import CODEC_IDC, CODEC_NAMES, HEVC, VVC, InnerCodecError, ffmpeg_exe  # noqa: F401
from ...ffmpeg import command


# frame rate given to the inner encoder: packet timestamps are then picture indices
_RATE = 25


@dataclass
class Structure:
    """Coding structure of the inner codec (CTC AI / RA / LD)."""
    intra_period: int = 32     # 1: all intra; 0: only the first picture
    gop_size: int = 16
    low_delay: bool = False
    qp: int = 32
    preset: str = "medium"

    @property
    def name(self) -> str:
        if self.intra_period == 1:
            return "AI"
        return "LD" if self.low_delay else "RA"


@dataclass
class InnerStream:
    data: bytes                                  # the whole inner bitstream (Annex B)
    access_units: list = field(default_factory=list)   # [(bytes, output index)] in decoding order
    pic_types: list = field(default_factory=list)      # 0/1/2 (I/P/B) per picture in output order
    log: list = field(default_factory=list)


def _pix_fmt(depth: int) -> str:
    return "yuv420p" if depth == 8 else f"yuv420p{depth}le"


def inner_bit_depth(codec_idc: int, coded_depth: int) -> int:
    """Bit depth the inner codec codes samples of ``coded_depth`` bits at."""
    supported = (8, 10, 12) if codec_idc == HEVC else (8, 10)
    for d in supported:
        if d >= coded_depth:
            return d
    raise InnerCodecError(f"{CODEC_NAMES[codec_idc].upper()} inner codec: {coded_depth}-bit samples exceed the "
                          f"supported bit depths {supported} (use BitDepthTruncation)")


def _raw_frames(frames, depth: int, container_depth: int) -> bytes:
    """Planar 4:2:0 frames; samples << ( container_depth - depth )."""
    sh = container_depth - depth
    dt = np.uint8 if container_depth == 8 else np.dtype("<u2")
    out = bytearray()
    for planes in frames:
        for p in planes:
            out += (np.asarray(p, dtype=np.uint16) << sh).astype(dt).tobytes()
    return bytes(out)


def _x265_params(st: Structure, qp: int, num: int) -> str:
    p = [f"qp={qp}", "frame-threads=1", "pools=1", "lookahead-slices=0", "info=0", "hash=0",
         "scenecut=0", "log-level=info"]
    if st.intra_period == 1:
        p += ["keyint=1", "min-keyint=1", "bframes=0"]
    else:
        ki = st.intra_period if st.intra_period > 0 else -1
        p += [f"keyint={ki}", f"min-keyint={max(ki, 1)}", "open-gop=0"]
        if st.low_delay:
            p += ["bframes=0"]
        else:
            b = max(0, min(st.gop_size - 1, 16))
            p += [f"bframes={b}", "b-adapt=0", "b-pyramid=1", f"rc-lookahead={max(b + 1, 2)}"]
    return ":".join(p)


def _vvenc_params(st: Structure, depth: int, num: int) -> str:
    p = ["Threads=1", f"InternalBitDepth={depth}"]
    if st.intra_period == 1:
        p += ["IntraPeriod=1"]
    elif st.low_delay:
        ip = st.intra_period if st.intra_period > 0 else 8 * (num // 8 + 2)
        if ip % 8:
            raise InnerCodecError(f"IntraPeriod {st.intra_period}: the VVC low-delay structure needs a multiple of 8")
        p += ["GOPSize=8", "PicReordering=0", "DecodingRefreshType=none", f"IntraPeriod={ip}"]
    else:
        if st.gop_size not in (16, 32):
            raise InnerCodecError(f"GOPSize {st.gop_size}: the VVC random-access structure supports 16 or 32")
        ip = st.intra_period if st.intra_period > 0 else st.gop_size * (num // st.gop_size + 2)
        if ip % st.gop_size:
            raise InnerCodecError(f"IntraPeriod {st.intra_period} must be a multiple of GOPSize {st.gop_size} for VVC")
        p += [f"GOPSize={st.gop_size}", f"IntraPeriod={ip}"]
    return ":".join(p)


def _run(cmd, what, cwd=None, data=None, timeout=600):
    try:
        r = subprocess.run(cmd, cwd=cwd, input=data, capture_output=True, timeout=timeout)
    except FileNotFoundError as e:
        raise InnerCodecError(f"{what}: cannot run {cmd[0]}: {e}")
    except subprocess.TimeoutExpired:
        raise InnerCodecError(f"{what}: ffmpeg timed out")
    return r


def encode_command(exe: str, codec_idc: int, width: int, height: int, in_depth: int, inner_depth: int,
                   st: Structure, num: int) -> list[str]:
    """ffmpeg command of the inner encoder (run in a folder holding ``in.yuv``): the raw
    4:2:0 input at ``in_depth`` bits, one output through the tee muxer (the inner bitstream
    ``out.<hevc|vvc>`` and its packet map ``out.crc``)."""
    ext = CODEC_NAMES[codec_idc]
    if codec_idc == HEVC:
        enc = {"c:v": "libx265", "preset": st.preset, "pix_fmt": _pix_fmt(inner_depth),
               "x265-params": _x265_params(st, st.qp, num)}
    else:
        enc = {"c:v": "libvvenc", "preset": st.preset, "qp": st.qp, "qpa": 0,
               "vvenc-params": _vvenc_params(st, inner_depth, num)}
    return command(exe, "in.yuv", f"[f={ext}]out.{ext}|[f=framecrc]out.crc",
                   global_args=["-hide_banner", "-nostdin", "-y"],
                   input_args={"f": "rawvideo", "pix_fmt": _pix_fmt(in_depth), "s": f"{width}x{height}",
                               "r": _RATE},
                   select="v", output_args={"f": "tee", **enc})


def picture_types_command(exe: str, codec_idc: int) -> list[str]:
    """ffmpeg command that decodes an inner bitstream from stdin and logs each picture (showinfo)."""
    return command(exe, "pipe:0", "-", global_args=["-hide_banner", "-nostdin"],
                   input_args={"f": CODEC_NAMES[codec_idc], "threads": 1},
                   output_args={"f": "null", "vf": "showinfo"})


def encode(codec_idc: int, frames, width: int, height: int, coded_depth: int, inner_depth: int,
           st: Structure) -> InnerStream:
    """Encode 4:2:0 frames (lists of three uint16 planes of ``coded_depth``
    bits) at ``inner_depth`` bits; returns the stream split into access units."""
    exe = ffmpeg_exe(codec_idc)
    num = len(frames)
    in_depth = inner_depth if codec_idc == HEVC else 10
    with tempfile.TemporaryDirectory(prefix="refsw_inner_") as tmp:
        with open(os.path.join(tmp, "in.yuv"), "wb") as f:
            f.write(_raw_frames(frames, coded_depth, in_depth))
        ext = CODEC_NAMES[codec_idc]
        cmd = encode_command(exe, codec_idc, width, height, in_depth, inner_depth, st, num)
        r = _run(cmd, "inner encoder", cwd=tmp)
        err = r.stderr.decode("utf-8", "replace")
        if r.returncode != 0 or not os.path.exists(os.path.join(tmp, f"out.{ext}")):
            tail = " | ".join(line for line in err.splitlines()[-6:] if line.strip())
            raise InnerCodecError(f"inner {ext} encoder failed (exit {r.returncode}): {tail}")
        with open(os.path.join(tmp, f"out.{ext}"), "rb") as f:
            data = f.read()
        with open(os.path.join(tmp, "out.crc")) as f:
            crc = f.read()
    log = []
    m = re.search(r"HEVC encoder version (\S+)", err)
    if m:
        log.append(f"inner encoder: x265 {m.group(1)} via {exe}")
    m = re.search(r"libvvenc version: (\S+)", err)
    if m:
        log.append(f"inner encoder: vvenc {m.group(1)} via {exe}")
    # packets in decoding order: sizes and presentation timestamps (= output index)
    tb = re.search(r"#tb 0: (\d+)/(\d+)", crc)
    pk = []
    for line in crc.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        f = [x.strip() for x in line.split(",")]
        pk.append((int(f[2]), int(f[4])))
    aus = []
    pos = 0
    if sum(s for _, s in pk) == len(data) and len(pk) == num and tb:
        num_, den = int(tb.group(1)), int(tb.group(2))
        for pts, size in pk:
            idx = (pts * num_ * _RATE + den // 2) // den
            aus.append((data[pos:pos + size], idx))
            pos += size
        if sorted(i for _, i in aus) != list(range(num)):
            aus = []
    if not aus:  # no usable packet map: the whole stream with the first picture
        aus = [(data, 0)]
        log.append("inner encoder: no packet map, whole inner stream carried with the first picture")
    return InnerStream(data, aus, _picture_types(exe, codec_idc, data, num), log)


def _picture_types(exe, codec_idc, data, num) -> list[int]:
    """ph_pic_type per output picture (informative), from the decoder's frame types."""
    r = _run(picture_types_command(exe, codec_idc), "inner picture types", data=data)
    types = [{"I": 0, "P": 1, "B": 2}[t] for t in re.findall(r"\btype:([IPB])\b", r.stderr.decode("utf-8", "replace"))]
    return types if len(types) == num else [0] + [2] * (num - 1)
