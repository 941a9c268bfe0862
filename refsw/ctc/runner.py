"""The CTC runner: refsw and anchors over the (sequence x rate point) grid.

Every point is one task run by :func:`run_task` (in a process pool of
``jobs`` workers; in-process when ``jobs == 1``).  A task writes, under the
output folder::

    <codec>/<sequence>/<label>.json    the result (metrics, times, commands, versions, key)
    <codec>/<sequence>/<label>.<ext>   the bitstream (.bin refsw, .hevc, .vvc, .jpg)
    <codec>/<sequence>/<label>.png|.yuv  the reconstruction (KeepRecon)

Resume: a task is skipped when its JSON exists with ``status == "ok"`` and
the same ``key``, a sha256 over everything the result depends on: the
prepared source samples, the rate point, the codec settings and versions
(for refsw: the encoder cfg and a hash of the refsw source and model files),
and the metric settings.  Anything else is (re)computed.

Timing: encode and decode times are wall-clock seconds of one point in its
worker: for refsw the ``Encoder.encode`` and ``Decoder.decode`` calls
in-process (one torch thread per worker when jobs > 1), for HEVC/VVC the
ffmpeg processes (including their start-up), for JPEG Pillow's calls.

Task branch (``TaskBranch``, refsw in CodingMode learned): the worker also
keeps the latent layers the branch reads (as refsw-extract;
``<label>.base.bin``), decodes them with ``Decoder(task=...)`` and records
``bits_base``, ``bpp_base``, ``branch_dec_time`` (extraction + branch
decoding) and the TaskMetric's ``task_branch_*`` values for the branch's
detections, scored against the same ground truth as the decoded pictures.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from .. import metrics as M
from .anchors import ANCHORS, anchor_points, code_ffmpeg, code_jpeg, versions
from .colour import rgb_to_ycbcr, ycbcr_to_rgb, yuv444_to_420
from .conditions import Condition, refsw_points
from .testsets import Item, TestSet, load_testset, prepare, read_item

RESULT_VERSION = 1
EXT = {"refsw": ".bin", "hevc": ".hevc", "vvc": ".vvc", "jpeg": ".jpg"}
_IO_KEYS = {"InputFile", "BitstreamFile", "ReconFile", "TraceFile", "Threads", "Device", "SourceWidth",
            "SourceHeight", "InputChromaFormat", "InputBitDepth", "FrameSkip", "FramesToBeEncoded"}
_ANCHOR_KEYS = {
    "hevc": ("HevcPreset", "HevcParams", "AnchorIntraPeriod", "AnchorGOPSize", "AnchorBitDepth",
             "ImageChromaFormat"),
    "vvc": ("VvcPreset", "VvcParams", "AnchorIntraPeriod", "AnchorGOPSize", "ImageChromaFormat"),
    "jpeg": ("JpegSubsampling",),
}
RESULT_FIELDS = [
    "codec", "sequence", "class", "label", "param", "kind", "width", "height", "frames", "fps",
    "bits", "bpp", "kbps", "rate",
    "psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "psnr_r", "psnr_g", "psnr_b", "psnr_rgb",
    "msssim", "msssim_db", "enc_time", "dec_time", "status", "notes", "bitstream", "recon",
]
BRANCH_FIELDS = ["bits_base", "bpp_base", "branch_dec_time"]   # refsw with TaskBranch


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def refsw_code_hash(roots=None) -> str:
    """sha256 over refsw's source (except refsw/ctc), syntax/ and refsw/data/
    (except its .md files: model cards do not change what is coded).
    ``roots`` (tests): the package folders, refsw's first."""
    if roots is None:
        import refsw
        import syntax
        roots = [Path(refsw.__file__).parent, Path(syntax.__file__).parent]
    h = hashlib.sha256()
    for root in roots:
        for p in sorted(root.rglob("*")):
            if not p.is_file() or "__pycache__" in p.parts or (root == roots[0] and p.parts[len(root.parts)] == "ctc"):
                continue
            if p.suffix == ".md" or (p.suffix != ".py" and p.relative_to(root).parts[0] != "data"):
                continue
            h.update(str(p.relative_to(root.parent)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------
# Metrics of one point
# --------------------------------------------------------------------------

def measure(item: dict, src, dec, *, yuv_src=None, yuv_dec=None, msssim=True) -> dict:
    """Quality of decoded pictures ``dec`` against sources ``src``.

    Video (YCbCr): PSNR Y, U, V, YUV (6:1:1), MS-SSIM on Y (mean over frames).
    Image (RGB): PSNR R, G, B, RGB and, in the Y'CbCr BT.709 4:2:0 domain,
    Y, U, V, YUV (reference: ``src`` converted by :func:`rgb_to_ycbcr`;
    test: ``yuv_dec``, an anchor's decoded YUV, else ``dec`` converted the
    same way); MS-SSIM on RGB.
    """
    r: dict = {}
    if src[0].colour_space == "rgb":
        rgb = M.sequence_psnr(src, dec)
        r.update(psnr_r=rgb[0], psnr_g=rgb[1], psnr_b=rgb[2], psnr_rgb=rgb[3])
        ys = [rgb_to_ycbcr(p, "420") for p in src]
        yd = [rgb_to_ycbcr(p, "420") for p in dec] if yuv_dec is None else \
            [yuv444_to_420(p) for p in yuv_dec]
        yuv = M.sequence_psnr(ys, yd)
    else:
        yuv = M.sequence_psnr(src, dec)
    if len(yuv) == 4:
        r.update(psnr_y=yuv[0], psnr_u=yuv[1], psnr_v=yuv[2], psnr_yuv=yuv[3])
    else:
        r.update(psnr_y=yuv[0])
    if msssim:
        vals = M.ms_ssim_batch(src, dec)
        v = sum(vals) / len(vals)
        r.update(msssim=v, msssim_db=M.ms_ssim_db(v))
    return r


def _rates(item: dict, bits: int) -> dict:
    px = item["width"] * item["height"] * item["frames"]
    bpp = bits / px
    out = {"bits": bits, "bpp": bpp}
    if item["kind"] == "video":
        out["kbps"] = M.kbps(bits, item["frames"], item["fps"] or 25.0)
        out["rate"] = out["kbps"]
    else:
        out["rate"] = bpp
    return out


# --------------------------------------------------------------------------
# One task
# --------------------------------------------------------------------------

@dataclass
class Task:
    codec: str
    item: dict
    label: str
    params: dict
    out_dir: str
    structure: str
    ctc: dict
    enc: dict
    enc_sources: dict
    key: str
    threads: int = 0

    @property
    def base(self) -> str:
        return os.path.join(self.out_dir, self.codec, self.item["name"], self.label)

    @property
    def json_path(self) -> str:
        return self.base + ".json"


def _load_task_metric(spec: str, item: dict, ctc: dict):
    if not spec:
        return None
    from .tasks import load_task_metric
    return load_task_metric(spec, item, ctc)


def _write_recon(path: str, pics, kind: str):
    from ..picture import write_output
    write_output(path, pics)


def run_task(task: Task) -> dict:
    """Code, decode and measure one point; writes and returns its result."""
    os.makedirs(os.path.dirname(task.base), exist_ok=True)
    item = task.item
    res = {"codec": task.codec, "sequence": item["name"], "class": item["cls"], "label": task.label,
           "param": next(iter(task.params.values()), ""), "kind": item["kind"], "width": item["width"],
           "height": item["height"], "frames": item["frames"], "fps": item["fps"], "key": task.key,
           "result_version": RESULT_VERSION, "params": task.params, "status": "ok", "notes": ""}
    bitstream = task.base + EXT[task.codec]
    try:
        src = read_item(Item(**{k: v for k, v in item.items() if k in Item.__dataclass_fields__}))
        notes = []
        yuv_src = yuv_dec = branch_dets = None
        if task.codec == "refsw":
            out = _run_refsw(task, src, bitstream)
            dec = out.pop("decoded")
            notes += out.pop("notes")
            branch_dets = out.pop("branch_dets", None)
            if "bits_base" in out:
                out["bpp_base"] = _rates(item, out["bits_base"])["bpp"]
        elif task.codec == "jpeg":
            out = code_jpeg(task.ctc, src, task.params["quality"], bitstream)
            dec = out.pop("decoded")
        else:
            work = task.base + ".tmp"
            os.makedirs(work, exist_ok=True)
            out = code_ffmpeg(task.codec, task.ctc, task.structure, src, item["fps"], task.params["qp"],
                              bitstream, work)
            os.rmdir(work)
            log = out.pop("log")
            with open(task.base + ".log", "w", encoding="utf-8") as f:
                f.write(log)
            yuv_src, yuv_dec = out.pop("yuv"), out.pop("decoded")
            dec = [ycbcr_to_rgb(p) for p in yuv_dec] if src[0].colour_space == "rgb" else yuv_dec
            if src[0].colour_space != "rgb":
                yuv_src = yuv_dec = None
        res.update(out)
        res.update(_rates(item, out["bits"]))
        res.update(measure(item, src, dec, yuv_src=yuv_src, yuv_dec=yuv_dec, msssim=task.ctc["MsSsim"]))
        tm = _load_task_metric(task.ctc["TaskMetric"], item, task.ctc)
        if tm is not None:
            _task_values(res, tm.evaluate(item, src, dec), "")
            if branch_dets is not None:
                if not hasattr(tm, "evaluate_detections"):
                    raise TypeError(f"TaskMetric {task.ctc['TaskMetric']} has no evaluate_detections(): "
                                    f"it cannot score TaskBranch {task.ctc['TaskBranch']}")
                _task_values(res, tm.evaluate_detections(item, src, branch_dets), "branch_")
        res["bitstream"] = os.path.relpath(bitstream, task.out_dir)
        if task.ctc["KeepRecon"]:
            rp = task.base + (".png" if item["kind"] == "image" and dec[0].colour_space == "rgb" else ".yuv")
            _write_recon(rp, dec, item["kind"])
            res["recon"] = os.path.relpath(rp, task.out_dir)
        res["notes"] = "; ".join(notes)
    except Exception as e:  # recorded, the grid goes on
        res["status"] = "error"
        res["notes"] = f"{type(e).__name__}: {e}"
        res["traceback"] = traceback.format_exc()
    tmp = task.json_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1, default=_json_default)
    os.replace(tmp, task.json_path)
    return res


def _task_values(res: dict, values: dict, prefix: str):
    """Task-metric values -> task_<prefix><name> columns; the "detail" dict -> task_detail."""
    for k, v in values.items():
        if k == "detail":
            res.setdefault("task_detail", {}).update({prefix + n: d for n, d in v.items()})
        else:
            res[f"task_{prefix}{k}"] = v


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _run_refsw(task: Task, src, bitstream: str) -> dict:
    from ..cfg import Config
    from ..decoder import Decoder
    from ..encoder import Encoder
    from ..threads import set_threads

    if task.threads:
        set_threads(task.threads)
    values = dict(task.enc)
    values.update(task.params)
    values["BitstreamFile"] = bitstream
    cfg = Config(values, dict(task.enc_sources))
    t0 = time.perf_counter()
    enc = Encoder(cfg)
    data = enc.encode(src)
    enc_time = time.perf_counter() - t0
    with open(bitstream, "wb") as f:
        f.write(data)
    t0 = time.perf_counter()
    out = Decoder(check_hash=True).decode(data)
    dec_time = time.perf_counter() - t0
    dec = [d.picture for d in out]
    notes = []
    if len(dec) != len(src):
        raise RuntimeError(f"refsw decoded {len(dec)} pictures for {len(src)} coded")
    bad = [d.poc for d in out if d.hash_status == "mismatch"]
    if bad:
        notes.append(f"decoded picture hash mismatch at POC {bad}")
    if enc.recon and any(not (a == b) for a, b in zip(enc.recon, dec)):
        notes.append("encoder and decoder reconstructions differ")
    call = "refsw.encoder.Encoder(cfg).encode(pictures)  # " + ", ".join(
        f"{k}={v}" for k, v in sorted(task.params.items())) + f" CodingMode={values['CodingMode']}"
    res = {"bits": 8 * len(data), "enc_time": enc_time, "dec_time": dec_time, "enc_cmd": [call],
           "dec_cmd": ["refsw.decoder.Decoder(check_hash=True).decode(data)"], "decoded": dec,
           "notes": notes}
    branch = task.ctc.get("TaskBranch")
    if branch and values["CodingMode"] != "learned":
        notes.append(f"TaskBranch {branch} ignored: CodingMode {values['CodingMode']}")
    elif branch:
        res.update(_run_branch(branch, values["ModelId"], data, bitstream))
    return res


def _run_branch(branch: str, model_id: int, data: bytes, bitstream: str) -> dict:
    """Task branch: keep the latent layers it reads (as refsw-extract), decode its detections."""
    from ..apps.extract import extract
    from ..decoder import Decoder
    from ..models.registry import find_task_branch

    top = find_task_branch(model_id, branch).num_layers - 1
    t0 = time.perf_counter()
    sub = extract(data, top)[0]
    out = Decoder(task=branch).decode(sub)
    dt = time.perf_counter() - t0
    with open(bitstream[:-4] + ".base.bin", "wb") as f:
        f.write(sub)
    dets = [d.task.boxes() for d in out]
    return {"bits_base": 8 * len(sub), "branch_dec_time": dt, "branch_dets": dets,
            "branch_cmd": [f"refsw.apps.extract.extract(data, {top}); "
                           f"refsw.decoder.Decoder(task={branch!r}).decode(sub)"]}


# --------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------

class Progress:
    """tqdm on a terminal when installed, else one line per finished point."""

    def __init__(self, total: int, desc: str, enabled: bool = True, stream=None):
        self.total, self.n, self.desc = total, 0, desc
        self.stream = stream or sys.stderr
        self.bar = None
        self.enabled = enabled and total > 0
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, unit="pt", file=self.stream)
            except ImportError:
                pass

    def update(self, msg: str):
        self.n += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(msg[-40:])
            self.bar.update(1)
        else:
            w = len(str(self.total))
            print(f"{self.desc} [{self.n:{w}d}/{self.total}] {msg}", file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------

@dataclass
class RunOutput:
    results: list
    testset: TestSet
    versions: dict
    out_dir: str
    ran: int
    skipped: int


def load_and_prepare(cond: Condition, log=None) -> TestSet:
    c = cond.ctc
    ts = load_testset(os.path.expandvars(os.path.expanduser(c.TestSet)),
                      os.path.expandvars(os.path.expanduser(c.TestSetRoot)))
    ts = ts.select(c.Sequences, c.Classes)
    return prepare(ts, ffmpeg=c.FfmpegPath, max_frames=c.MaxFrames, verify=c.VerifyHashes, log=log)


def build_tasks(cond: Condition, ts: TestSet, codecs: list[str], out_dir: str, vers: dict,
                jobs: int = 1, ctc_overrides: dict | None = None) -> list[Task]:
    ctc = cond.ctc.as_dict()
    ctc.update(ctc_overrides or {})
    enc = cond.enc.as_dict()
    if cond.structure in ("ra", "ld") and ts.kind != "video":
        raise ValueError(f"Structure {cond.structure}: the test set {ts.name} has images; RA and LD "
                         f"need a video test set")
    metric_keys = {"MsSsim": ctc["MsSsim"], "TaskMetric": ctc["TaskMetric"]}
    tasks = []
    code_hash = refsw_code_hash() if "refsw" in codecs else ""
    for it in ts.items:
        item = it.to_dict()
        item["cls"] = item.pop("class")
        src_id = {"sha256": it.prepared_sha256, "frames": it.frames, "fps": it.fps}
        for codec in codecs:
            if codec == "refsw":
                points = refsw_points(cond)
                settings = {k: v for k, v in enc.items() if k not in _IO_KEYS}
                ident = {"code": code_hash, "enc": settings}
                if ctc["TaskBranch"]:
                    ident["branch"] = ctc["TaskBranch"]
            else:
                if codec == "jpeg" and ts.kind != "image":
                    raise ValueError("the JPEG anchor codes images; the test set has video")
                points = anchor_points(codec, ctc)
                ident = {"versions": {k: v for k, v in vers[codec].items() if k != "ffmpeg_path"},
                         "settings": {k: ctc[k] for k in _ANCHOR_KEYS[codec]},
                         "structure": cond.structure}
            for label, params in points:
                key = _sha({"v": RESULT_VERSION, "codec": codec, "src": src_id, "params": params,
                            "ident": ident, "metrics": metric_keys})
                tasks.append(Task(codec, item, label, params, out_dir, cond.structure, ctc, enc,
                                  dict(cond.enc.source), key, threads=1 if jobs > 1 else 0))
    return tasks


def is_done(task: Task) -> dict | None:
    try:
        with open(task.json_path, encoding="utf-8") as f:
            r = json.load(f)
    except (OSError, ValueError):
        return None
    if r.get("status") != "ok" or r.get("key") != task.key:
        return None
    if not os.path.isfile(os.path.join(task.out_dir, r.get("bitstream", "\0"))):
        return None
    return r


def execute(tasks: list[Task], *, jobs: int = 2, force: bool = False, progress: bool = True,
            desc: str = "ctc") -> tuple[list[dict], int, int]:
    """Run the tasks not already done; returns (results in task order, ran, skipped)."""
    results: list = [None] * len(tasks)
    todo = []
    for i, t in enumerate(tasks):
        r = None if force else is_done(t)
        if r is None:
            todo.append(i)
        else:
            results[i] = r
    # biggest first: better packing on the pool
    todo.sort(key=lambda i: -(tasks[i].item["width"] * tasks[i].item["height"] * tasks[i].item["frames"]))
    bar = Progress(len(todo), desc, progress)

    def msg(r, dt=None):
        s = f"{r['codec']} {r['sequence']} {r['label']}"
        if r["status"] != "ok":
            return s + f" ERROR {r['notes'][:120]}"
        return s + f" rate={r['rate']:.4g} enc={r['enc_time']:.2f}s"

    try:
        if jobs <= 1 or len(todo) <= 1:
            for i in todo:
                results[i] = run_task(tasks[i])
                bar.update(msg(results[i]))
        else:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as ex:
                futs = {ex.submit(run_task, tasks[i]): i for i in todo}
                for f in as_completed(futs):
                    i = futs[f]
                    results[i] = f.result()
                    bar.update(msg(results[i]))
    finally:
        bar.close()
    return results, len(todo), len(tasks) - len(todo)


def run(cond: Condition, codecs: list[str], *, out_dir: str, jobs: int = 2, force: bool = False,
        progress: bool = True, log=None) -> RunOutput:
    """Prepare the test set, run every (codec x item x rate point) and write
    ``results.csv`` and ``run.json`` in ``out_dir``."""
    for c in codecs:
        if c != "refsw" and c not in ANCHORS:
            raise ValueError(f"unknown anchor {c!r}; known: {', '.join(ANCHORS)}")
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    ts = load_and_prepare(cond, log=log)
    vers = {c: versions(c, cond.ctc.as_dict()) for c in codecs if c != "refsw"}
    if "refsw" in codecs:
        vers["refsw"] = refsw_version()
    over = {}
    if cond.ctc.MsSsim:
        import importlib.util
        if importlib.util.find_spec("pytorch_msssim") is None:
            over["MsSsim"] = False
            if log:
                log("warning: pytorch-msssim is not installed: MS-SSIM is skipped (pip install pytorch-msssim)")
    tasks = build_tasks(cond, ts, codecs, out_dir, vers, jobs, over)
    results, ran, skipped = execute(tasks, jobs=jobs, force=force, progress=progress,
                                    desc=f"{cond.name}:{'+'.join(codecs)}")
    write_results_csv(os.path.join(out_dir, "results.csv"), results)
    info = {"condition": cond.name, "cfg_files": cond.files, "settings": cond.text, "codecs": codecs,
            "versions": vers, "testset": {"name": ts.name, "manifest": ts.manifest, "kind": ts.kind,
                                          "items": [it.to_dict() for it in ts.items]},
            "argv": sys.argv, "python": sys.version.split()[0], "jobs": jobs,
            "time": time.strftime("%Y-%m-%d %H:%M:%S %z"), "ran": ran, "skipped": skipped}
    with open(os.path.join(out_dir, f"run-{'+'.join(codecs)}.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1, default=_json_default)
    return RunOutput(results, ts, vers, out_dir, ran, skipped)


def refsw_version() -> dict:
    import subprocess
    from importlib import metadata
    import refsw
    try:
        ver = metadata.version("refsw")
    except metadata.PackageNotFoundError:
        ver = ""
    v = {"refsw": ver, "code_sha256": refsw_code_hash()}
    try:
        root = Path(refsw.__file__).resolve().parents[1]
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True)
        if head.returncode == 0:
            v["git"] = head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except OSError:
        pass
    try:
        import torch
        v["torch"] = torch.__version__
    except ImportError:
        pass
    return v


def write_results_csv(path: str, results: list[dict]):
    extra = [k for k in BRANCH_FIELDS if any(r and k in r for r in results)]
    extra += sorted({k for r in results if r for k in r if k.startswith("task_") and k != "task_detail"})
    fields = RESULT_FIELDS + extra + ["enc_cmd"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in results:
            row = dict(r)
            row["enc_cmd"] = " ".join(r.get("enc_cmd", []))
            for k, v in row.items():
                if isinstance(v, float):
                    row[k] = "inf" if v == math.inf else ("nan" if math.isnan(v) else f"{v:.6f}")
            w.writerow(row)
