"""Inner decoding (docs/spec/track2.md, T2.2): HEVC or VVC through ffmpeg.

Decoding runs the ffmpeg HEVC or VVC decoder single-threaded on the carried
bitstream; its output is defined by ITU-T H.265 / H.266, so it does not
depend on the decoder build or on any thread count.  Inner encoding is the
encoder's choice: refsw.encoder.track2.inner.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import threading

import numpy as np

from syntax.errors import BitstreamError

from ...ffmpeg import command

HEVC, VVC = 0, 1
CODEC_IDC = {"hevc": HEVC, "vvc": VVC}
CODEC_NAMES = {HEVC: "hevc", VVC: "vvc"}


class InnerCodecError(ValueError):
    """The inner codec cannot run (no ffmpeg with it), or cannot code the input with these settings."""


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


#: pixel format of a 4:2:0 inner picture per InnerBitDepth (T2.1), as ffmpeg names it
PIX_FMT = {8: "yuv420p", 10: "yuv420p10le", 12: "yuv420p12le"}
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


def decode_command(exe: str, codec_idc: int, count: int) -> list[str]:
    """ffmpeg command of the inner decoder: the bitstream on stdin, at most ``count`` + 1
    pictures (one more than signalled, so that an extra picture is seen) as raw samples on stdout.
    -noautoscale: a picture of another size is passed on (and refused by :func:`decode`), not
    rescaled; showinfo logs the format and size of every output picture."""
    name = CODEC_NAMES[codec_idc]
    return command(exe, "pipe:0", "pipe:1",
                   global_args=["-hide_banner", "-nostdin", "-v", "info", "-nostats", "-xerror"],
                   input_args={"threads": 1, "err_detect": "crccheck+bitstream+buffer+explode", "f": name,
                               "c:v": name},
                   select="v:0",
                   output_args={"noautoscale": None, "vf": "showinfo", "frames:v": count + 1,
                                "fps_mode": "passthrough", "f": "rawvideo"})


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
    cmd = decode_command(exe, codec_idc, count)
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
    if fmt != PIX_FMT.get(inner_depth):
        raise fail(f"the {name.upper()} inner bitstream is {fmt or 'of unknown format'}; the RESTORATION unit "
                   f"signals 4:2:0 at InnerBitDepth {inner_depth} ({PIX_FMT.get(inner_depth)})")
    for n, m in enumerate(filter(None, map(_PICTURE_INFO.search, log))):
        pfmt, pw, ph = m.group(1), int(m.group(2)), int(m.group(3))
        if (pfmt, pw, ph) != (PIX_FMT.get(inner_depth), width, height):
            raise fail(f"inner picture {n} of the {name.upper()} inner bitstream is {pw}x{ph} {pfmt}, expected "
                       f"{width}x{height} {PIX_FMT.get(inner_depth)} (CodedWidth x CodedHeight, InnerBitDepth)")
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
