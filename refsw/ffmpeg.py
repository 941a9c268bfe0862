"""Locating and running the pinned ffmpeg build.

The CTC uses one ffmpeg for everything (clip conversion, x265, vvenc and
decoding): by default the static build shipped in the ``imageio-ffmpeg``
wheel, whose version is pinned by pip and which is the only offline build
with libvvenc.  ``FfmpegPath`` (cfg) or ``$REFSW_FFMPEG`` selects another
binary (e.g. Debian's ``/usr/bin/ffmpeg`` for x265 only); the path and the
version line are recorded with every result.

Every ffmpeg command line is built with ffmpeg-python (:func:`command`): the
library compiles the input -> output graph to an argument list, and refsw runs
that list with its own subprocess code (timeouts, bounded reading, error
messages), so the exact command stays recorded.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess


class FfmpegError(RuntimeError):
    """ffmpeg missing, or a command failed (message has the command and stderr tail)."""


def find_ffmpeg(path: str = "") -> str:
    """The ffmpeg executable: ``path`` if given, else $REFSW_FFMPEG, else the
    imageio-ffmpeg build, else ``ffmpeg`` on PATH."""
    cand = path or os.environ.get("REFSW_FFMPEG", "")
    if cand:
        found = shutil.which(cand) or (cand if os.path.isfile(cand) else None)
        if not found:
            raise FfmpegError(f"ffmpeg not found at {cand!r}")
        return os.path.abspath(found)
    try:
        import imageio_ffmpeg
        exe = imageio_ffmpeg.get_ffmpeg_exe()
        if exe and os.path.isfile(exe):
            return exe
    except Exception:
        pass
    exe = shutil.which("ffmpeg")
    if not exe:
        raise FfmpegError("no ffmpeg: install imageio-ffmpeg (pip) or ffmpeg (apt), or set FfmpegPath")
    return exe


@functools.lru_cache(maxsize=None)
def ffmpeg_version(exe: str) -> str:
    """First line of ``ffmpeg -version``."""
    out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


@functools.lru_cache(maxsize=None)
def has_encoder(exe: str, name: str) -> bool:
    out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True)
    return re.search(rf"\s{re.escape(name)}\s", out.stdout) is not None


def _ffmpeg_python():
    """The ffmpeg-python module, imported on first use (decoding a stream without an
    inner codec does not load it).  Ours is ``refsw.ffmpeg``; this is the top-level ``ffmpeg``."""
    import ffmpeg
    return ffmpeg


def command(exe: str, src: str, dst: str, *, global_args=(), input_args: dict | None = None,
            select: str | None = None, output_args: dict | None = None) -> list[str]:
    """The argument list of one ffmpeg run (one input, one output), compiled by ffmpeg-python:

    ``exe`` and ``global_args``, then ``input_args`` and ``-i src``, ``-map 0:<select>`` (when
    ``select`` is given, e.g. ``"v"`` or ``"v:0"``), ``output_args`` and ``dst``.  Option names
    are ffmpeg's without the dash (``{"c:v": "libx265", "noautoscale": None}``: None = no value).

    ffmpeg-python writes the options of each file in its own order (``-f`` first, the others
    sorted by name); ffmpeg reads the options of one file as a set, so that order does not change
    what ffmpeg does.  The global options are given as the head of the command (``cmd=``):
    ffmpeg-python's ``global_args`` would place them after the output file.  Give the picture
    size as ``s``, not ``video_size`` (ffmpeg-python 0.2.0's output ``video_size`` fails on
    Python >= 3.10)."""
    ffmpeg = _ffmpeg_python()
    stream = ffmpeg.input(src, **(input_args or {}))
    if select:
        stream = stream[select]
    return ffmpeg.compile(ffmpeg.output(stream, dst, **(output_args or {})), cmd=[exe, *global_args])


def run(cmd: list[str], *, what: str = "ffmpeg", stdout=None) -> subprocess.CompletedProcess:
    """Run ``cmd``; raise :class:`FfmpegError` with the stderr tail on failure."""
    p = subprocess.run(cmd, stdout=stdout if stdout is not None else subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        tail = p.stderr.decode("utf-8", "replace").strip().splitlines()[-8:]
        raise FfmpegError(f"{what} failed (exit {p.returncode}): {' '.join(cmd)}\n  " + "\n  ".join(tail))
    return p
