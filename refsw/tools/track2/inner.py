"""Inner codec: HEVC (x265) or VVC (vvenc) through ffmpeg (docs/spec/track2.md, T2.2).

Encoding is the encoder's choice (non-normative).  Decoding runs the ffmpeg
HEVC or VVC decoder single-threaded on the carried bitstream; its output is
defined by ITU-T H.265 / H.266, so it does not depend on the decoder build
or on any thread count.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np

from syntax.errors import BitstreamError

HEVC, VVC = 0, 1
CODEC_IDC = {"hevc": HEVC, "vvc": VVC}
CODEC_NAMES = {HEVC: "hevc", VVC: "vvc"}
# frame rate given to the inner encoder: packet timestamps are then picture indices
_RATE = 25


class InnerCodecError(ValueError):
    """The inner encoder cannot code the input with these settings."""


def _imageio_ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return None


def ffmpeg_exe(codec_idc: int) -> str:
    """ffmpeg with the inner codec: Debian's for HEVC (libx265 and the hevc
    decoder), the imageio-ffmpeg build for VVC (libvvenc and the vvc decoder)."""
    if codec_idc == HEVC:
        exe = shutil.which("ffmpeg") or _imageio_ffmpeg()
    else:
        exe = _imageio_ffmpeg()
    if not exe:
        raise InnerCodecError(f"no ffmpeg with {CODEC_NAMES[codec_idc].upper()} support found "
                              "(install Debian ffmpeg or the imageio-ffmpeg wheel)")
    return exe


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
        cmd = [exe, "-hide_banner", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", _pix_fmt(in_depth),
               "-s", f"{width}x{height}", "-r", str(_RATE), "-i", "in.yuv", "-map", "0:v"]
        if codec_idc == HEVC:
            cmd += ["-c:v", "libx265", "-preset", st.preset, "-pix_fmt", _pix_fmt(inner_depth),
                    "-x265-params", _x265_params(st, st.qp, num)]
        else:
            cmd += ["-c:v", "libvvenc", "-preset", st.preset, "-qp", str(st.qp), "-qpa", "0",
                    "-vvenc-params", _vvenc_params(st, inner_depth, num)]
        cmd += ["-f", "tee", f"[f={ext}]out.{ext}|[f=framecrc]out.crc"]
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
    r = _run([exe, "-hide_banner", "-nostdin", "-threads", "1", "-f", CODEC_NAMES[codec_idc], "-i", "pipe:0",
              "-vf", "showinfo", "-f", "null", "-"], "inner picture types", data=data)
    types = [{"I": 0, "P": 1, "B": 2}[t] for t in re.findall(r"\btype:([IPB])\b", r.stderr.decode("utf-8", "replace"))]
    return types if len(types) == num else [0] + [2] * (num - 1)


#: pixel format of a 4:2:0 inner picture per InnerBitDepth (T2.1), as ffmpeg names it
_PIX_FMT = {8: "yuv420p", 10: "yuv420p10le", 12: "yuv420p12le"}
#: the input stream line of the inner decoder's log: "Stream #0:0: Video: hevc (Main), yuv420p(tv), ..."
_STREAM_FMT = re.compile(r"^\s*Stream #0:0\S*: Video: \w+[^,]*, (\w+)")
#: one output picture as the showinfo filter logs it: "... n:   0 pts: ... fmt:yuv420p ... s:64x64 ..."
#: (n restarts when the filter is reconfigured for a new size: pictures are counted here)
_PICTURE_INFO = re.compile(r"\] n:\s*\d+ .*\bfmt:(\w+) .*\bs:(\d+)x(\d+) ")
#: bound on the inner decoder's log kept in memory (one showinfo line per picture is ~300 bytes)
_MAX_LOG_BYTES = 1 << 22


def _run_bounded(cmd, data: bytes, max_out: int, timeout: float = 600):
    """Run ``cmd`` with ``data`` on stdin; (returncode, stdout, stderr, note).  Reading
    stops, and the process is killed, once stdout exceeds ``max_out`` bytes (note
    "output"), stderr exceeds _MAX_LOG_BYTES ("log") or ``timeout`` s pass ("timeout")."""
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise InnerCodecError(f"inner decoder: cannot run {cmd[0]}: {e}")
    note = []

    def stop(why):
        if not note:
            note.append(why)
        proc.kill()

    def feed():
        try:
            proc.stdin.write(data)
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    err = bytearray()

    def drain():
        for block in iter(lambda: proc.stderr.read(1 << 16), b""):
            err.extend(block)
            if len(err) > _MAX_LOG_BYTES:
                stop("log")
                break

    threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=drain, daemon=True)]
    for t in threads:
        t.start()
    timer = threading.Timer(timeout, stop, ("timeout",))
    timer.start()
    out = bytearray()
    try:
        for block in iter(lambda: proc.stdout.read(1 << 20), b""):
            out.extend(block)
            if len(out) > max_out:
                stop("output")
                break
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in threads:
            t.join(5)
    return proc.returncode, bytes(out), bytes(err), (note[0] if note else None)


def decode(codec_idc: int, data: bytes, width: int, height: int, inner_depth: int, count: int,
           where: str | None = None) -> list[list[np.ndarray]]:
    """Normative inner decoding: ``count`` pictures (three planes each) in
    output order, each CodedWidth x CodedHeight 4:2:0 at InnerBitDepth (T2.2).
    Any failure is a BitstreamError naming the INNER unit.  The decoder's output
    is read up to the size of ``count`` pictures, never further."""
    def fail(msg):
        return BitstreamError(msg, structure="inner_codec_payload", element="icp_data_byte", clause="T2.2",
                              where=where)
    try:
        exe = ffmpeg_exe(codec_idc)
    except InnerCodecError as e:
        raise fail(str(e))
    name = CODEC_NAMES[codec_idc]
    cw, ch = (width + 1) // 2, (height + 1) // 2
    bps = 1 if inner_depth == 8 else 2
    frame_bytes = (width * height + 2 * cw * ch) * bps
    # -noautoscale: a picture of another size is passed on (and refused below), not rescaled;
    # showinfo logs the format and size of every output picture
    cmd = [exe, "-hide_banner", "-nostdin", "-v", "info", "-nostats", "-xerror", "-threads", "1",
           "-err_detect", "crccheck+bitstream+buffer+explode", "-f", name, "-c:v", name, "-i", "pipe:0",
           "-map", "0:v:0", "-noautoscale", "-vf", "showinfo", "-frames:v", str(count + 1),
           "-fps_mode", "passthrough", "-f", "rawvideo", "pipe:1"]
    try:
        rc, out, err, note = _run_bounded(cmd, data, count * frame_bytes)
    except InnerCodecError as e:
        raise fail(str(e))
    log = err.decode("utf-8", "replace").splitlines()
    if note == "timeout":
        raise fail(f"the {name.upper()} inner bitstream ({len(data)} bytes): the inner decoder timed out")
    if note == "log":
        raise fail(f"the {name.upper()} inner bitstream ({len(data)} bytes): the inner decoder's log exceeds "
                   f"{_MAX_LOG_BYTES} bytes")
    if note is None and rc != 0:
        errors = [line for line in log if (line.startswith("[") and "showinfo" not in line) or "rror" in line]
        msg = " | ".join(line for line in errors[-4:] if line.strip())
        raise fail(f"the {name.upper()} inner bitstream ({len(data)} bytes) does not decode: {msg or 'ffmpeg exit ' + str(rc)}")
    # the inner bitstream's own format (its SPS), as the inner decoder reports it
    fmt = next((m.group(1) for m in map(_STREAM_FMT.search, log) if m), None)
    if fmt != _PIX_FMT.get(inner_depth):
        raise fail(f"the {name.upper()} inner bitstream is {fmt or 'of unknown format'}; the RESTORATION unit "
                   f"signals 4:2:0 at InnerBitDepth {inner_depth} ({_PIX_FMT.get(inner_depth)})")
    for n, m in enumerate(filter(None, map(_PICTURE_INFO.search, log))):
        pfmt, pw, ph = m.group(1), int(m.group(2)), int(m.group(3))
        if (pfmt, pw, ph) != (_PIX_FMT.get(inner_depth), width, height):
            raise fail(f"inner picture {n} of the {name.upper()} inner bitstream is {pw}x{ph} {pfmt}, expected "
                       f"{width}x{height} {_PIX_FMT.get(inner_depth)} (CodedWidth x CodedHeight, InnerBitDepth)")
    if note == "output" or len(out) != count * frame_bytes:
        got = "more than " + str(count) if note == "output" else f"{len(out) / frame_bytes:g}"
        raise fail(f"the {name.upper()} inner bitstream decodes to {got} pictures of {width}x{height} 4:2:0 "
                   f"{inner_depth}-bit, expected {count}")
    dt = np.uint8 if bps == 1 else np.dtype("<u2")
    arr = np.frombuffer(out, dtype=dt)
    pics = []
    off = 0
    maxv = (1 << inner_depth) - 1
    for _ in range(count):
        planes = []
        for w, h in ((width, height), (cw, ch), (cw, ch)):
            p = arr[off:off + w * h].reshape(h, w).astype(np.uint16)
            off += w * h
            planes.append(p)
        if bps == 2 and max(int(p.max()) for p in planes) > maxv:
            raise fail(f"inner decoder output exceeds {inner_depth} bits (rm_inner_bit_depth_minus8 does not "
                       "match the inner bitstream)")
        pics.append(planes)
    return pics
