"""CTC conditions: the CTC option table and how it meets the encoder cfg.

``refsw-ctc run --cfg ctc/ai.cfg`` reads cfg files with one merged option
table: the encoder's keys (:data:`refsw.options.ENCODER_OPTIONS`, used for the
refsw side) plus the CTC keys below (test set, rate points, anchor settings).
For every ``--cfg DIR/NAME.cfg`` the runner first reads the condition file
``DIR/conditions/NAME.cfg`` if it exists (so ``ctc/ai.cfg`` pulls in
``ctc/conditions/ai.cfg``); a condition file can also be given directly
(``--cfg ctc/conditions/ra.cfg``).  Files merge left to right and
``--Key value`` on the command line overrides them all, as in refsw-encode.
The condition name (used for the output folder) is the stem of the first
``--cfg`` file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import cfg as cfgmod
from ..cfg import Config, IntList, Option, OptionTable
from ..options import ENCODER_OPTIONS

G_SET = "CTC: test set"
G_STRUCT = "CTC: structure"
G_RATE = "CTC: rate points"
G_ANCHOR = "CTC: anchors"
G_REPORT = "CTC: metrics and report"

CTC_OPTIONS = OptionTable([
    Option("TestSet", str, "skimage", "test set: NAME (ctc/testsets/NAME.json), a manifest .json or a "
           "directory (user set)", group=G_SET),
    Option("TestSetRoot", str, "", "directory of a user set's files (manifests with a 'root' "
           "environment variable, e.g. kodak, sfu-hw)", group=G_SET),
    Option("Sequences", str, "", "comma-separated item names to run (empty: all)", group=G_SET),
    Option("Classes", str, "", "comma-separated classes to run (empty: all)", group=G_SET),
    Option("MaxFrames", int, 0, "code at most this many frames per video item (0: as the manifest)",
           range=(0, None), group=G_SET),
    Option("VerifyHashes", bool, True, "check the sha256 of sources and prepared items against the "
           "manifest", group=G_SET),
    Option("Structure", str, "ai", "coding structure of the condition: ai (all intra), ra (random "
           "access), ld (low delay)", choices=("ai", "ra", "ld"), group=G_STRUCT),
    Option("AnchorIntraPeriod", int, 32, "RA anchors: intra period in pictures", range=(1, 1024),
           group=G_STRUCT),
    Option("AnchorGOPSize", int, 16, "RA anchors: GOP size (hierarchical B)", range=(1, 32), group=G_STRUCT),
    Option("AnchorBitDepth", int, 10, "internal bit depth of the HEVC anchor (VVC: always 10)",
           choices=(8, 10), group=G_STRUCT),
    Option("ImageChromaFormat", str, "420", "format RGB images are converted to for HEVC/VVC "
           "(BT.709 full range; 444: HEVC only)", choices=("420", "444"), group=G_STRUCT),
    Option("QualityPoints", IntList, [], "refsw rate points: Quality values (learned mode); empty: the "
           "cfg's Quality", range=(0, 63), group=G_RATE),
    Option("ResidualQPs", IntList, [], "refsw rate points with the residual enhancement layer (clause 11): "
           "ResidualQP values, each coded at ResidualQuality; appended to QualityPoints", range=(0, 63),
           group=G_RATE),
    Option("ResidualQuality", int, 36, "quality index of the learned picture under the ResidualQPs points",
           range=(0, 63), group=G_RATE),
    Option("InnerQPs", IntList, [], "refsw rate points in CodingMode inner: QP values; empty: the "
           "anchor QPs of the InnerCodec", range=(0, 63), group=G_RATE),
    Option("HevcQPs", IntList, [22, 27, 32, 37], "HEVC anchor QPs", range=(0, 51), group=G_RATE),
    Option("VvcQPs", IntList, [22, 27, 32, 37], "VVC anchor QPs", range=(0, 63), group=G_RATE),
    Option("JpegQualities", IntList, [10, 25, 50, 75, 90], "JPEG anchor qualities", range=(1, 100),
           group=G_RATE),
    Option("HevcPreset", str, "medium", "x265 preset", group=G_ANCHOR),
    Option("VvcPreset", str, "medium", "vvenc preset (faster, fast, medium, slow, slower)", group=G_ANCHOR),
    Option("HevcParams", str, "", "extra x265 parameters (key=value:...), appended", group=G_ANCHOR),
    Option("VvcParams", str, "", "extra vvenc parameters (key=value:...), appended", group=G_ANCHOR),
    Option("JpegSubsampling", str, "420", "JPEG chroma subsampling", choices=("420", "422", "444"),
           group=G_ANCHOR),
    Option("FfmpegPath", str, "", "ffmpeg binary (empty: $REFSW_FFMPEG, else the imageio-ffmpeg "
           "build, else ffmpeg on PATH)", group=G_ANCHOR),
    Option("BdMethod", str, "pchip", "BD interpolation: pchip (JVET) or cubic (VCEG-M33)",
           choices=("pchip", "cubic"), group=G_REPORT),
    Option("MsSsim", bool, True, "compute MS-SSIM (pytorch-msssim)", group=G_REPORT),
    Option("TaskMetric", str, "", "task metric factory 'module:callable' (see refsw.ctc.tasks); its "
           "values get Pareto BD-rates", group=G_REPORT),
    Option("TaskNetwork", str, "", "task network of the detection metric (refsw.ctc.detection_metric:"
           "detection_ap): a registered name (mtcnn, hog) or module:Class, the same interface as RoiDetector",
           group=G_REPORT),
    Option("TaskNetworkArgs", str, "", "settings of TaskNetwork, key=value,key=value", group=G_REPORT),
    Option("TaskGtScore", float, 0.9, "detection_ap: the pseudo ground truth is TaskNetwork's detections on "
           "the source with a score of at least this (in the network's own score range)", group=G_REPORT),
    Option("TaskBranch", str, "", "refsw learned: also decode this task branch (e.g. face) from the "
           "latent layers it reads (extracted as refsw-extract does) and score its detections with "
           "TaskMetric: columns bits_base, bpp_base, branch_dec_time, task_branch_*", group=G_REPORT),
    Option("KeepRecon", bool, True, "keep the reconstructions (.png / .yuv) next to the bitstreams",
           group=G_REPORT),
    Option("Plots", bool, True, "draw RD plots (PNG, needs matplotlib)", group=G_REPORT),
])


def merged_table() -> OptionTable:
    clash = set(ENCODER_OPTIONS.keys()) & set(CTC_OPTIONS.keys())
    if clash:  # pragma: no cover - guarded by a test
        raise ValueError(f"CTC keys clash with encoder keys: {clash}")
    return OptionTable(list(ENCODER_OPTIONS) + list(CTC_OPTIONS))


@dataclass
class Condition:
    name: str
    enc: Config              # refsw encoder settings (ENCODER_OPTIONS keys)
    ctc: Config              # CTC settings (CTC_OPTIONS keys)
    files: list              # cfg files read, in order
    text: str                # cfg dump of every setting with its source (recorded)

    @property
    def structure(self) -> str:
        return self.ctc.Structure


def _with_conventions(argv: list[str]) -> tuple[list[str], list[str]]:
    """Insert the condition file conventionally paired with each --cfg."""
    out, given = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        path = None
        if a in ("--cfg", "-c") and i + 1 < len(argv):
            path = argv[i + 1]
            step = 2
        elif a.startswith("--cfg="):
            path = a.split("=", 1)[1]
            step = 1
        if path is None:
            out.append(a)
            i += 1
            continue
        p = Path(path)
        conv = p.parent / "conditions" / (p.stem + ".cfg")
        if conv.is_file() and conv.resolve() != p.resolve():
            out += ["--cfg", str(conv)]
        out += ["--cfg", path]
        given.append(path)
        i += step
    return out, given


def parse_condition(argv: list[str]) -> Condition:
    """Parse ``--cfg`` files and ``--Key value`` overrides (see module doc)."""
    full, given = _with_conventions(list(argv))
    if not given:
        raise cfgmod.CfgError("no condition given: --cfg ctc/ai.cfg (or ctc/conditions/NAME.cfg)",
                              where=cfgmod.COMMAND_LINE)
    table = merged_table()
    c, files = cfgmod.parse(full, table)
    enc = Config({k: c[k] for k in ENCODER_OPTIONS.keys()}, {k: c.source[k] for k in ENCODER_OPTIONS.keys()})
    ctc = Config({k: c[k] for k in CTC_OPTIONS.keys()}, {k: c.source[k] for k in CTC_OPTIONS.keys()})
    name = Path(given[0]).stem
    return Condition(name, enc, ctc, files, cfgmod.dump(c, table, sources=True))


def with_values(config: Config, **values) -> Config:
    """A copy of ``config`` with some values replaced (source 'ctc runner')."""
    v = config.as_dict()
    src = dict(config.source)
    for k, x in values.items():
        if k not in v:
            raise KeyError(k)
        v[k] = x
        src[k] = "ctc runner"
    return Config(v, src)


def refsw_points(cond: Condition) -> list[tuple[str, dict]]:
    """(label, encoder overrides) of the refsw rate points.

    pcm: one lossless point.  learned: one point per QualityPoints value
    (or the cfg's Quality), then one per ResidualQPs value (at ResidualQuality).  inner: one per InnerQPs value (or the anchor
    QPs of the InnerCodec)."""
    mode = cond.enc.CodingMode
    if mode == "pcm":
        return [("lossless", {})]
    if mode == "inner":
        qps = cond.ctc.InnerQPs or (cond.ctc.HevcQPs if cond.enc.InnerCodec == "hevc" else cond.ctc.VvcQPs)
        return [(f"qp{q}", {"QP": q}) for q in qps]
    qs = cond.ctc.QualityPoints or [cond.enc.Quality]
    rq = cond.ctc.ResidualQuality
    return ([(f"q{q:02d}", {"Quality": q}) for q in qs]
            + [(f"q{rq:02d}r{r:02d}", {"Quality": rq, "ResidualQP": r}) for r in cond.ctc.ResidualQPs])


def env_path(p: str) -> str:
    return os.path.expandvars(os.path.expanduser(p))
