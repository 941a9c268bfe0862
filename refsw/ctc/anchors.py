"""Anchors: HEVC (x265), VVC (vvenc) and JPEG (Pillow), from pinned encoders.

Each anchor turns one (item, rate point) into a bitstream, decodes it and
returns the decoded pictures, the exact commands and the times.  Settings
(see docs/ctc.md, "Anchors"):

HEVC  x265 through ffmpeg ``-c:v libx265``, fixed QP (``-qp``: x265's CQP,
      which disables AQ and cu-tree), ``pools=1:frame-threads=1`` (one
      thread, deterministic), ``info=0`` (no version SEI in the rate),
      ``scenecut=0``, ``b-adapt=0``.
        AI  ``keyint=1``, ``ipratio=1`` (every picture intra at the nominal QP)
        RA  ``keyint=AnchorIntraPeriod``, ``bframes=AnchorGOPSize-1``,
            ``b-pyramid=1`` (x265 has one B-reference level), open GOP (CRA, as
            the JVET CTC); x265's default QP offsets (ipratio 1.4, pbratio 1.3)
        LD  ``bframes=0``, only the first picture intra (IPPP)
VVC   vvenc through ffmpeg ``-c:v libvvenc`` (needs yuv420p10le input),
      ``-qp``, ``-qpa 0`` (no perceptual QP adaptation: PSNR anchors),
      ``-threads 1``.
        AI  ``IntraPeriod=1:GOPSize=1``
        RA  ``IntraPeriod=AnchorIntraPeriod:GOPSize=AnchorGOPSize`` (CRA)
        LD  ``PicReordering=0:GOPSize=8:DecodingRefreshType=none:IntraPeriod=-1``
JPEG  Pillow (libjpeg-turbo) baseline, ``quality=Q``, 4:2:0 (JpegSubsampling),
      ``optimize=True`` (optimal Huffman tables); images only.

Input formats: video items are coded as they are (8-bit YUV 4:2:0) at
``AnchorBitDepth`` (10 by default: samples shifted left by 2, as the JVET CTC
code 8-bit content with a 10-bit internal bit depth; VVC is always 10-bit).
RGB images are converted to Y'CbCr BT.709 full range 4:2:0
(``ImageChromaFormat``, 4:4:4 for HEVC only), see :mod:`refsw.ctc.colour`.
Pictures are padded by edge replication to a multiple of 8 and the decoded
pictures cropped back (as a conformance window would).  The decoded
pictures are brought back to the source bit depth by a rounding right shift
before any metric.  Decoding uses the same ffmpeg with ``-threads 1``.
"""
from __future__ import annotations

import functools
import io
import os
import re
import subprocess
import tempfile
import time

import numpy as np

from ..picture import Picture, YuvReader, write_yuv
from .colour import change_bit_depth, rgb_to_ycbcr
from ..ffmpeg import FfmpegError, command, ffmpeg_version, find_ffmpeg, has_encoder, run

ANCHORS = ("hevc", "vvc", "jpeg")
X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")
VVENC_PRESETS = ("faster", "fast", "medium", "slow", "slower")
PAD = 8
#: global options of every anchor command (the log level follows them)
_GLOBAL = ["-hide_banner", "-nostdin", "-y"]


class AnchorError(RuntimeError):
    """An anchor cannot code this item with these settings."""


def anchor_points(anchor: str, ctc) -> list[tuple[str, dict]]:
    """(label, params) of every rate point of ``anchor`` under CTC settings ``ctc``."""
    if anchor == "hevc":
        return [(f"qp{q}", {"qp": q}) for q in ctc["HevcQPs"]]
    if anchor == "vvc":
        return [(f"qp{q}", {"qp": q}) for q in ctc["VvcQPs"]]
    if anchor == "jpeg":
        return [(f"q{q:02d}", {"quality": q}) for q in ctc["JpegQualities"]]
    raise AnchorError(f"unknown anchor {anchor!r}; known: {', '.join(ANCHORS)}")


# --------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _probe_encoder(exe: str, anchor: str) -> str:
    """Version string the encoder prints (one tiny encode)."""
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "p.yuv")
        with open(src, "wb") as f:
            f.write(bytes(64 * 64 * 3))  # 64x64 10-bit 4:2:0, one frame
        enc = {"c:v": "libx265", "x265-params": "pools=1:frame-threads=1"} if anchor == "hevc" else \
            {"c:v": "libvvenc", "preset": "faster", "threads": 1}
        cmd = command(exe, src, os.path.join(d, "o.bin"), global_args=_GLOBAL + ["-loglevel", "info"],
                      input_args={"f": "rawvideo", "pix_fmt": "yuv420p10le", "s": "64x64"},
                      output_args={"f": "hevc" if anchor == "hevc" else "vvc", **enc})
        p = subprocess.run(cmd, capture_output=True, text=True)
    return _version_from_log(anchor, p.stderr) or f"unknown (exit {p.returncode})"


def _version_from_log(anchor: str, log: str) -> str:
    pat = r"HEVC encoder version (\S+)" if anchor == "hevc" else r"libvvenc version: (\S+)"
    m = re.search(pat, log)
    if not m:
        return ""
    return ("x265 " if anchor == "hevc" else "vvenc ") + m.group(1)


def versions(anchor: str, ctc) -> dict:
    """Version strings of the codec behind ``anchor`` (recorded with results)."""
    if anchor == "jpeg":
        import PIL
        from PIL import features
        return {"pillow": PIL.__version__, "libjpeg": f"libjpeg-turbo {features.version('libjpeg_turbo')}"
                if features.check("libjpeg_turbo") else f"libjpeg {features.version('jpg')}"}
    exe = find_ffmpeg(ctc["FfmpegPath"])
    need = "libx265" if anchor == "hevc" else "libvvenc"
    if not has_encoder(exe, need):
        raise AnchorError(f"{exe} has no {need} encoder; the {anchor.upper()} anchor needs it "
                          f"(imageio-ffmpeg's build has both; set FfmpegPath)")
    return {"ffmpeg_path": exe, "ffmpeg": ffmpeg_version(exe), "encoder": _probe_encoder(exe, anchor)}


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

def x265_params(structure: str, ctc, frames: int) -> str:
    base = "pools=1:frame-threads=1:info=0:scenecut=0:b-adapt=0"
    if structure == "ai":
        s = f"{base}:keyint=1:min-keyint=1:bframes=0:ipratio=1"
    elif structure == "ra":
        g = ctc["AnchorGOPSize"]
        if not 1 <= g <= 17:
            raise AnchorError(f"AnchorGOPSize {g}: x265 allows at most 16 B-frames (GOP <= 17)")
        ip = ctc["AnchorIntraPeriod"]
        s = (f"{base}:keyint={ip}:min-keyint={ip}:open-gop=1:bframes={g - 1}:"
             f"b-pyramid={1 if g > 2 else 0}:rc-lookahead={max(20, g)}")
    elif structure == "ld":
        s = f"{base}:keyint={frames + 1}:min-keyint={frames + 1}:bframes=0"
    else:
        raise AnchorError(f"unknown structure {structure!r}")
    return s + (":" + ctc["HevcParams"] if ctc["HevcParams"] else "")


def vvenc_params(structure: str, ctc) -> str:
    if structure == "ai":
        s = "IntraPeriod=1:GOPSize=1"
    elif structure == "ra":
        g = ctc["AnchorGOPSize"]
        if g not in (16, 32):
            raise AnchorError(f"AnchorGOPSize {g}: vvenc random access needs GOP 16 or 32")
        s = f"IntraPeriod={ctc['AnchorIntraPeriod']}:GOPSize={g}"
    elif structure == "ld":
        s = "PicReordering=0:GOPSize=8:DecodingRefreshType=none:IntraPeriod=-1"
    else:
        raise AnchorError(f"unknown structure {structure!r}")
    return s + (":" + ctc["VvcParams"] if ctc["VvcParams"] else "")


def encode_command(anchor: str, ctc, structure: str, *, width: int, height: int, frames: int,
                   fps: float, chroma: str, bit_depth: int, qp: int) -> list[str]:
    """ffmpeg encode command with placeholders ``{src}`` and ``{out}``."""
    exe = find_ffmpeg(ctc["FfmpegPath"])
    if anchor == "hevc":
        if ctc["HevcPreset"] not in X265_PRESETS:
            raise AnchorError(f"HevcPreset {ctc['HevcPreset']!r}: one of {', '.join(X265_PRESETS)}")
        enc = {"f": "hevc", "c:v": "libx265", "preset": ctc["HevcPreset"], "qp": qp,
               "x265-params": x265_params(structure, ctc, frames)}
    else:
        if ctc["VvcPreset"] not in VVENC_PRESETS:
            raise AnchorError(f"VvcPreset {ctc['VvcPreset']!r}: one of {', '.join(VVENC_PRESETS)}")
        if chroma != "420" or bit_depth != 10:
            raise AnchorError("the VVC anchor (vvenc) codes 10-bit 4:2:0 only")
        enc = {"f": "vvc", "c:v": "libvvenc", "preset": ctc["VvcPreset"], "qp": qp, "qpa": 0, "threads": 1,
               "vvenc-params": vvenc_params(structure, ctc)}
    return command(exe, "{src}", "{out}", global_args=_GLOBAL + ["-loglevel", "info"],
                   input_args={"f": "rawvideo", "pix_fmt": _pix_fmt(chroma, bit_depth), "s": f"{width}x{height}",
                               "r": _fps_str(fps)},
                   output_args={"frames:v": frames, "fflags": "+bitexact", "flags:v": "+bitexact", **enc})


def decode_command(anchor: str, ctc, chroma: str, bit_depth: int) -> list[str]:
    """ffmpeg decode command with placeholders ``{in}`` and ``{out}``."""
    exe = find_ffmpeg(ctc["FfmpegPath"])
    return command(exe, "{in}", "{out}", global_args=_GLOBAL + ["-loglevel", "error"],
                   input_args={"threads": 1, "f": "hevc" if anchor == "hevc" else "vvc"},
                   output_args={"f": "rawvideo", "pix_fmt": _pix_fmt(chroma, bit_depth)})


def _pix_fmt(chroma, bit_depth):
    base = {"420": "yuv420p", "444": "yuv444p"}[chroma]
    return base if bit_depth == 8 else f"{base}{bit_depth}le"


def _fps_str(fps):
    if not fps:
        return "25"
    if abs(fps * 1001 - round(fps * 1001)) < 1e-6 and abs(fps - round(fps)) > 1e-6:
        return f"{round(fps * 1001)}/1001"
    return f"{fps:g}"


def _fmt(cmd, **kw):
    return [a.format(**kw) if "{" in a else a for a in cmd]


# --------------------------------------------------------------------------
# Coding one point
# --------------------------------------------------------------------------

def _pad(pic: Picture, m: int) -> Picture:
    w, h = -(-pic.width // m) * m, -(-pic.height // m) * m
    if (w, h) == (pic.width, pic.height):
        return pic
    sw = 2 if pic.chroma_format == "420" else 1
    planes = []
    for c, p in enumerate(pic.planes):
        tw, th = (w, h) if c == 0 else (w // sw, h // sw)
        planes.append(np.pad(p, ((0, th - p.shape[0]), (0, tw - p.shape[1])), mode="edge"))
    return Picture(planes, pic.chroma_format, pic.bit_depth, pic.colour_space)


def _crop(pic: Picture, w: int, h: int) -> Picture:
    sw = 2 if pic.chroma_format == "420" else 1
    planes = [pic.planes[0][:h, :w]] + [p[:-(-h // sw), :-(-w // sw)] for p in pic.planes[1:]]
    return Picture([np.ascontiguousarray(p) for p in planes], pic.chroma_format, pic.bit_depth, pic.colour_space)


def anchor_input(anchor: str, ctc, pics: list[Picture]) -> tuple[list[Picture], str, int]:
    """The YUV pictures an anchor codes (before padding), their chroma format
    and the coding bit depth."""
    if pics[0].colour_space == "rgb":
        chroma = ctc["ImageChromaFormat"]
        if anchor == "vvc" and chroma != "420":
            raise AnchorError("ImageChromaFormat 444: the VVC anchor (vvenc) codes 4:2:0 only")
        yuv = [rgb_to_ycbcr(p, chroma) for p in pics]
    else:
        if pics[0].chroma_format != "420":
            raise AnchorError(f"{anchor}: only 4:2:0 video is supported, got {pics[0].chroma_format}")
        yuv, chroma = pics, "420"
    bd = 10 if anchor == "vvc" else ctc["AnchorBitDepth"]
    if bd < yuv[0].bit_depth:
        raise AnchorError(f"AnchorBitDepth {bd} is below the source bit depth {yuv[0].bit_depth}")
    return yuv, chroma, bd


def code_ffmpeg(anchor: str, ctc, structure: str, pics: list[Picture], fps: float, qp: int,
                bitstream: str, workdir: str) -> dict:
    """Code ``pics`` with x265 or vvenc; returns bits, times, commands, log
    and ``yuv``/``decoded`` (lists of pictures at the source bit depth,
    the latter cropped to the source size)."""
    yuv, chroma, bd = anchor_input(anchor, ctc, pics)
    src_bd = yuv[0].bit_depth
    w, h = yuv[0].width, yuv[0].height
    coded = [change_bit_depth(_pad(p, PAD), bd) for p in yuv]
    cw, ch = coded[0].width, coded[0].height
    src = os.path.join(workdir, "src.yuv")
    dec = os.path.join(workdir, "dec.yuv")
    write_yuv(src, coded)
    enc_t = encode_command(anchor, ctc, structure, width=cw, height=ch, frames=len(coded), fps=fps,
                           chroma=chroma, bit_depth=bd, qp=qp)
    enc = _fmt(enc_t, src=src, out=bitstream)
    t0 = time.perf_counter()
    p = run(enc, what=f"{anchor} encoding")
    enc_time = time.perf_counter() - t0
    log = p.stderr.decode("utf-8", "replace")
    dec_t = decode_command(anchor, ctc, chroma, bd)
    dcmd = _fmt(dec_t, **{"in": bitstream, "out": dec})
    t0 = time.perf_counter()
    run(dcmd, what=f"{anchor} decoding")
    dec_time = time.perf_counter() - t0
    reader = YuvReader(dec, cw, ch, chroma, bd)
    if len(reader) != len(coded):
        raise FfmpegError(f"{anchor}: decoded {len(reader)} pictures, coded {len(coded)}")
    decoded = [_crop(change_bit_depth(q, src_bd), w, h) for q in reader]
    os.remove(src)
    os.remove(dec)
    return {"bits": 8 * os.path.getsize(bitstream), "enc_time": enc_time, "dec_time": dec_time,
            "enc_cmd": enc, "dec_cmd": dcmd, "enc_cmd_template": enc_t, "dec_cmd_template": dec_t,
            "encoder_version": _version_from_log(anchor, log), "chroma": chroma, "coded_bit_depth": bd,
            "coded_size": [cw, ch], "log": log, "yuv": yuv, "decoded": decoded}


def jpeg_settings(ctc) -> dict:
    return {"subsampling": {"444": 0, "422": 1, "420": 2}[ctc["JpegSubsampling"]], "optimize": True,
            "progressive": False}


def code_jpeg(ctc, pics: list[Picture], quality: int, bitstream: str) -> dict:
    """Code one RGB (or grey) picture with Pillow's JPEG encoder."""
    from PIL import Image

    if len(pics) != 1:
        raise AnchorError("the JPEG anchor codes images (one picture), not video")
    pic = pics[0]
    if pic.bit_depth != 8 or pic.colour_space != "rgb" and pic.chroma_format != "400":
        raise AnchorError("the JPEG anchor needs an 8-bit RGB or greyscale picture")
    arr = np.stack(pic.planes, -1).astype(np.uint8) if pic.colour_space == "rgb" else \
        pic.planes[0].astype(np.uint8)
    im = Image.fromarray(arr)
    s = jpeg_settings(ctc)
    t0 = time.perf_counter()
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=int(quality), **s)
    data = buf.getvalue()
    enc_time = time.perf_counter() - t0
    with open(bitstream, "wb") as f:
        f.write(data)
    t0 = time.perf_counter()
    with Image.open(io.BytesIO(data)) as d:
        d.load()
        out = np.asarray(d.convert("RGB") if pic.colour_space == "rgb" else d.convert("L"))
    dec_time = time.perf_counter() - t0
    if out.ndim == 3:
        rec = Picture([out[..., c].astype(np.uint16) for c in range(3)], "444", 8, "rgb")
    else:
        rec = Picture([out.astype(np.uint16)], "400", 8, "ycbcr")
    call = (f"PIL.Image.save(format='JPEG', quality={quality}, subsampling={s['subsampling']}, "
            f"optimize=True, progressive=False)")
    return {"bits": 8 * len(data), "enc_time": enc_time, "dec_time": dec_time, "enc_cmd": [call],
            "dec_cmd": ["PIL.Image.open(...).convert('RGB')"], "enc_cmd_template": [call],
            "dec_cmd_template": ["PIL.Image.open(...).convert('RGB')"], "decoded": [rec]}
