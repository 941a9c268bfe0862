"""Split networks: task networks cut in two for feature coding (MPEG-VCM
Track 1, issue #29; non-normative).

A split network is a task network given as two parts, the tensors at the
cut, and the task's post-processing::

    picture --preprocess + part 1--> cut tensors --part 2--> outputs --postprocess--> detections
            (encoder side)             (what a feature codec codes)   (decoder side)

API (every split network)::

    net = get_split_network("ppocr_det")            # registry name or module:Class
    feats = net.part1(rgb)        # RGB uint8 H x W x 3 -> {cut name: float32 (1, C, h, w)}
    out = net.part2(feats)        # {cut name: array} -> the network's outputs
    dets = net.postprocess(out, (H, W))   # outputs, picture size (height, width) -> [Detection]
    dets = net.run(picture)       # all three (a refsw Picture or an RGB uint8 array);
                                  # net.detect(picture) is the same: a split network is a TaskNetwork
    net.cut                       # (CutTensor(name, channels, stride), ...) in a fixed order
    net.input_size((H, W))        # the size of part 1's input (after the network's resizing)
    net.cut_shapes((H, W))        # {cut name: (1, C, h, w)} for a picture of that size

Part 2 sees only the cut tensors (what a feature decoder has) and the
picture size (which a feature bitstream signals); it must not need anything
else from part 1.

Three ways to give a network:

* **Two ONNX files** and tensor names: :class:`OnnxSplitNetwork` (part 1
  maps the input to the cut tensors, part 2 the cut tensors to the outputs).
* **One ONNX file plus the cut tensor names**:
  :meth:`OnnxSplitNetwork.from_model` splits it with
  ``onnx.utils.extract_model`` into ``$REFSW_CACHE/split`` (default
  ``~/.cache/refsw/split``), once; the cached parts are named by the model's
  sha256 and the cut.
* **A plug-in returning torch modules** (``get_split_network("mypkg.fpn:FasterRcnnFpn")``,
  the module importable through PYTHONPATH).  ``Class(**kw)`` is either a
  :class:`SplitNetwork` itself, or an object with these attributes, which
  :class:`TorchSplitNetwork` wraps::

      class FasterRcnnFpn:                 # e.g. Detectron2's R50-FPN cut after the FPN
          name = "frcnn_fpn"
          labels = ("person", "bicycle", ...)
          cut = [("p2", 256, 4), ("p3", 256, 8), ("p4", 256, 16), ("p5", 256, 32), ("p6", 256, 64)]
          def __init__(self, weights="model_final.pkl"):
              model = ...                                  # build and load (no download)
              self.part1_module = model.backbone           # x -> {"p2": ..., ..., "p6": ...}
              self.part2_module = Rest(model)              # {"p2": ..., ...} -> outputs
          def preprocess(self, rgb):                       # RGB uint8 H x W x 3 ->
              return tensor_1x3xhxw                        #   torch tensor or float32 array
          def postprocess(self, outputs, picture_size):    # -> [refsw.tasks.Detection]
              ...                                          #   boxes in picture samples

  ``part1_module(x)`` returns the cut tensors as a dict (or a tuple in the
  order of ``cut``); ``part2_module(feats)`` takes that dict of tensors and
  returns anything ``postprocess`` understands (tensors at the top level of
  a dict, tuple or list are returned as numpy arrays).  Both run in
  ``torch.no_grad()`` in eval mode.  A Detectron2 FPN: part 1 is
  ``model.backbone`` (normalisation in ``preprocess``), part 2 the proposal
  generator and ROI heads on an ``ImageList`` whose size follows from the
  shape of ``p2`` (4 x) and the picture size.  A JDE tracker: part 1 the
  Darknet-53 layers up to the cut, part 2 the rest with the three YOLO
  heads; ``postprocess`` does the NMS and the association, keeping the
  tracks between calls (frames come in order; an optional ``reset()`` starts
  a sequence).

The shipped default, ``ppocr_det``, is :class:`PpOcrTextDetector`: the
PP-OCRv4 text detector of the rapidocr-onnxruntime wheel, cut at the outputs
of its neck.
"""
from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .network import Detection, TaskNetwork, build_network, picture_to_rgb8


@dataclass(frozen=True)
class CutTensor:
    """One tensor at the cut: its name, number of channels and stride (input
    samples per feature sample; the map of an h x w input is ceil(h/stride) x ceil(w/stride))."""
    name: str
    channels: int
    stride: int


def _cut(cut) -> tuple:
    out = tuple(c if isinstance(c, CutTensor) else CutTensor(str(c[0]), int(c[1]), int(c[2])) for c in cut)
    names = [c.name for c in out]
    if not out or len(set(names)) != len(names):
        raise ValueError(f"split network: the cut needs distinct tensor names, got {names}")
    return out


class SplitNetwork(TaskNetwork):
    """Interface of a split network (see the module docstring).

    Subclasses implement :meth:`preprocess`, :meth:`forward1`, :meth:`part2`
    and :meth:`postprocess`; :meth:`part1`, :meth:`run` and :meth:`detect`
    follow."""

    name = "split"
    cut: tuple = ()

    def preprocess(self, rgb: np.ndarray):
        """RGB uint8 H x W x 3 -> the input of part 1."""
        raise NotImplementedError

    def forward1(self, x) -> dict:
        """Part 1 on a preprocessed input."""
        raise NotImplementedError

    def part1(self, rgb: np.ndarray) -> dict:
        """RGB uint8 H x W x 3 -> {cut name: float32 (1, C, h, w)}."""
        return self.forward1(self.preprocess(_rgb(rgb)))

    def part2(self, feats: dict):
        """{cut name: array (1, C, h, w)} -> the network's outputs."""
        raise NotImplementedError

    def postprocess(self, out, picture_size) -> list[Detection]:
        """Outputs of part 2 and the picture size (height, width) -> detections in picture samples."""
        raise NotImplementedError

    def run(self, picture) -> list[Detection]:
        rgb = _rgb(picture)
        return self.postprocess(self.part2(self.part1(rgb)), rgb.shape[:2])

    def detect(self, picture) -> list[Detection]:
        return self.run(picture)

    def input_size(self, picture_size) -> tuple:
        """(height, width) of part 1's input for a picture of ``picture_size`` (height, width)."""
        return tuple(int(v) for v in picture_size)

    def cut_shapes(self, picture_size) -> dict:
        h, w = self.input_size(picture_size)
        return {c.name: (1, c.channels, -(-h // c.stride), -(-w // c.stride)) for c in self.cut}

    def check_features(self, feats: dict) -> None:
        """ValueError unless ``feats`` has exactly the cut tensors with their channel counts."""
        want = [c.name for c in self.cut]
        if sorted(feats) != sorted(want):
            raise ValueError(f"split network {self.name}: part 2 needs the tensors {want}, got {sorted(feats)}")
        for c in self.cut:
            s = np.shape(feats[c.name])
            if len(s) != 4 or s[0] != 1 or s[1] != c.channels:
                raise ValueError(f"split network {self.name}: {c.name} must be (1, {c.channels}, h, w), got {s}")


def _rgb(picture) -> np.ndarray:
    if isinstance(picture, np.ndarray):
        if picture.dtype != np.uint8 or picture.ndim != 3 or picture.shape[2] != 3:
            raise ValueError(f"split network input: RGB uint8 H x W x 3 expected, got {picture.dtype} "
                             f"{picture.shape}")
        return picture
    return picture_to_rgb8(picture)


# ---------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------

def _need(module: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"{what} needs the Python package {module}: pip install -e '.[track1]' "
                         f"(scripts/setup.sh installs it)") from None


def session(path, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads and one inter-op thread."""
    ort = _need("onnxruntime", "an ONNX split network")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def split_cache_dir() -> Path:
    from ..content import cache_dir
    return Path(cache_dir()) / "split"


def _sha256(path) -> str:
    from ..filehash import file_sha256
    return file_sha256(path)


def split_onnx(model, cut_names: Sequence[str], *, input_names: Sequence[str] | None = None,
               output_names: Sequence[str] | None = None, cache: str | os.PathLike | None = None,
               model_sha256: str = "") -> tuple[Path, Path]:
    """Split an ONNX model at ``cut_names`` with ``onnx.utils.extract_model``:
    part 1 = the graph inputs -> the cut tensors, part 2 = the cut tensors ->
    the graph outputs.  The parts are written once into ``cache`` (default
    :func:`split_cache_dir`) under a folder named by the model's sha256 and the
    cut, and reused.  Returns (part 1 path, part 2 path)."""
    onnx = _need("onnx", "splitting an ONNX model")
    model = Path(model)
    sha = model_sha256 or _sha256(model)
    if input_names is None or output_names is None:
        g = onnx.load(str(model), load_external_data=False).graph
        inits = {i.name for i in g.initializer}
        input_names = list(input_names or [i.name for i in g.input if i.name not in inits])
        output_names = list(output_names or [o.name for o in g.output])
    key = hashlib.sha256("\n".join([sha, *input_names, "|", *cut_names, "|", *output_names]).encode()).hexdigest()
    d = Path(cache or split_cache_dir()) / f"{model.stem}-{sha[:12]}-{key[:12]}"
    p1, p2 = d / "part1.onnx", d / "part2.onnx"
    if not (p1.is_file() and p2.is_file()):
        d.mkdir(parents=True, exist_ok=True)
        for path, ins, outs in ((p1, input_names, cut_names), (p2, cut_names, output_names)):
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.onnx")
            try:
                onnx.utils.extract_model(str(model), str(tmp), list(ins), list(outs))
            except Exception as e:   # onnx raises ValueError / KeyError / checker errors
                raise ValueError(f"splitting {model} at {list(cut_names)}: {type(e).__name__}: {e}") from None
            os.replace(tmp, path)
    return p1, p2


def _probe_cut(sess1, input_name: str, cut_names, size: int = 256) -> list[tuple]:
    """(name, channels, stride) of each cut tensor, from part 1 run on a size x size zero input."""
    x = np.zeros((1, 3, size, size), np.float32)
    outs = sess1.run(list(cut_names), {input_name: x})
    return [(n, int(o.shape[1]), size // int(o.shape[2])) for n, o in zip(cut_names, outs)]


class OnnxSplitNetwork(SplitNetwork):
    """A split network from two ONNX files (part 1: input -> cut tensors,
    part 2: cut tensors -> outputs), run with onnxruntime on the CPU.

    cut           [(name, channels, stride)] or names (channels and strides then come from a
                  probe run of part 1 on a 256 x 256 zero input)
    preprocess    RGB uint8 H x W x 3 -> float32 (1, 3, h, w); default: RGB / 255
    postprocess   (outputs dict, picture size (H, W)) -> [Detection]; default: none (an error)
    full_model    the unsplit model (optional): :meth:`full` runs it, for the round-trip check
    threads       onnxruntime intra-op threads (default 1)
    """

    def __init__(self, part1_path, part2_path, cut, *, name: str = "onnx_split", input_name: str = "",
                 output_names: Sequence[str] | None = None, preprocess: Callable | None = None,
                 postprocess: Callable | None = None, full_model=None, threads: int = 1, labels=("object",)):
        self.name = name
        self.labels = tuple(labels)
        self.paths = (Path(part1_path), Path(part2_path))
        self.threads = int(threads)
        self.s1 = session(part1_path, self.threads)
        self.s2 = session(part2_path, self.threads)
        self.input_name = input_name or self.s1.get_inputs()[0].name
        self.output_names = list(output_names or [o.name for o in self.s2.get_outputs()])
        if cut and all(isinstance(c, str) for c in cut):
            cut = _probe_cut(self.s1, self.input_name, list(cut))
        self.cut = _cut(cut)
        missing = {c.name for c in self.cut} - {i.name for i in self.s2.get_inputs()}
        if missing:
            raise ValueError(f"split network {name}: part 2 ({part2_path}) has no input(s) {sorted(missing)}")
        self._pre = preprocess
        self._post = postprocess
        self.full_model = full_model
        self._full = None

    @classmethod
    def from_model(cls, model, cut, *, input_name: str = "", output_names=None, cache=None,
                   model_sha256: str = "", **kw) -> "OnnxSplitNetwork":
        """Split one ONNX file at the cut tensors (names or (name, channels, stride))
        into the cache (:func:`split_onnx`) and load the parts."""
        names = [c if isinstance(c, str) else (c.name if isinstance(c, CutTensor) else c[0]) for c in cut]
        p1, p2 = split_onnx(model, names, input_names=[input_name] if input_name else None,
                            output_names=output_names, cache=cache, model_sha256=model_sha256)
        return cls(p1, p2, cut, input_name=input_name, output_names=output_names, full_model=model, **kw)

    def preprocess(self, rgb):
        if self._pre is not None:
            return self._pre(rgb)
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)

    def forward1(self, x) -> dict:
        names = [c.name for c in self.cut]
        return dict(zip(names, self.s1.run(names, {self.input_name: x})))

    def part2(self, feats: dict) -> dict:
        self.check_features(feats)
        inputs = {c.name: np.ascontiguousarray(feats[c.name], dtype=np.float32) for c in self.cut}
        return dict(zip(self.output_names, self.s2.run(self.output_names, inputs)))

    def full(self, rgb) -> dict:
        """The unsplit model's outputs on the same preprocessed input (needs ``full_model``)."""
        if self.full_model is None:
            raise ValueError(f"split network {self.name}: no full model given")
        if self._full is None:
            self._full = session(self.full_model, self.threads)
        return dict(zip(self.output_names, self._full.run(self.output_names,
                                                          {self.input_name: self.preprocess(_rgb(rgb))})))

    def postprocess(self, out, picture_size):
        if self._post is None:
            raise NotImplementedError(f"split network {self.name}: no post-processing given")
        return self._post(out, picture_size)


# ---------------------------------------------------------------------------
# torch plug-ins
# ---------------------------------------------------------------------------

class TorchSplitNetwork(SplitNetwork):
    """A split network from a plug-in object holding two torch modules (see the
    module docstring): ``part1_module``, ``part2_module``, ``cut``,
    ``preprocess(rgb)``, ``postprocess(outputs, picture_size)``, and
    optionally ``name``, ``labels``, ``input_size(picture_size)``, ``reset()``."""

    def __init__(self, plugin, device: str = "cpu"):
        import torch
        self.torch = torch
        for attr in ("part1_module", "part2_module", "cut", "preprocess", "postprocess"):
            if not hasattr(plugin, attr):
                raise ValueError(f"split network plug-in {type(plugin).__name__} has no {attr}")
        self.plugin = plugin
        self.name = getattr(plugin, "name", type(plugin).__name__)
        self.labels = tuple(getattr(plugin, "labels", ("object",)))
        self.cut = _cut(plugin.cut)
        self.device = device
        self.m1 = plugin.part1_module.to(device).eval()
        self.m2 = plugin.part2_module.to(device).eval()

    def _tensor(self, a):
        t = a if isinstance(a, self.torch.Tensor) else self.torch.from_numpy(np.ascontiguousarray(a, np.float32))
        return t.to(self.device)

    def preprocess(self, rgb):
        return self.plugin.preprocess(rgb)

    def forward1(self, x) -> dict:
        with self.torch.no_grad():
            y = self.m1(self._tensor(x))
        if not isinstance(y, dict):
            y = dict(zip([c.name for c in self.cut], y))
        return {c.name: y[c.name].detach().cpu().numpy().astype(np.float32, copy=False) for c in self.cut}

    def part2(self, feats: dict):
        self.check_features(feats)
        with self.torch.no_grad():
            out = self.m2({c.name: self._tensor(feats[c.name]) for c in self.cut})
        return _to_numpy(out, self.torch)

    def postprocess(self, out, picture_size):
        return self.plugin.postprocess(out, tuple(picture_size))

    def input_size(self, picture_size):
        f = getattr(self.plugin, "input_size", None)
        return tuple(f(picture_size)) if f else super().input_size(picture_size)

    def reset(self):
        f = getattr(self.plugin, "reset", None)
        if f:
            f()


def _to_numpy(out, torch):
    if isinstance(out, torch.Tensor):
        return out.detach().cpu().numpy()
    if isinstance(out, dict):
        return {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return type(out)(v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for v in out)
    return out


# ---------------------------------------------------------------------------
# The shipped default: PP-OCRv4 text detection (rapidocr-onnxruntime wheel)
# ---------------------------------------------------------------------------

PPOCR_WHEEL = "rapidocr-onnxruntime"
PPOCR_MODEL = "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"
PPOCR_SHA256 = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"   # in rapidocr-onnxruntime 1.4.4
PPOCR_INPUT = "x"
PPOCR_OUTPUT = "sigmoid_0.tmp_0"
# the outputs of the RSE-FPN neck (inputs of the DBNet head), finest first: 24 channels each
_HALF = np.array([0.5, 0.5, 0.5])                 # rapidocr's mean and std (float64)
PPOCR_CUT = (("p2o.Add.277", 24, 4), ("p2o.Add.271", 24, 8), ("p2o.Add.265", 24, 16), ("p2o.Add.259", 24, 32))


def ppocr_model_path() -> Path:
    from ..content import ContentError, wheel_file
    try:
        return wheel_file(PPOCR_WHEEL, PPOCR_MODEL)
    except ContentError as e:
        raise ValueError(f"the ppocr_det split network: {e} (the model ships in its wheel; install it with "
                         f"pip install --no-deps rapidocr-onnxruntime==1.4.4 and the track1 extra, as "
                         f"scripts/setup.sh does)") from None


def resize_rule(picture_size, limit_side_len: int = 736, limit_type: str = "min", max_side_len: int = 2000):
    """(height, width) of the detector's input, as rapidocr-onnxruntime 1.4.4 sizes it
    (``RapidOCR.preprocess`` then ``DetPreProcess.resize``):

    1. when the longer side exceeds ``max_side_len``: scale it to ``max_side_len``
       (sizes truncated, then rounded to a multiple of 32);
    2. ``limit_type`` "min": when the shorter side is below ``limit_side_len``, scale it to
       ``limit_side_len``; "max": when the longer side exceeds ``limit_side_len``, scale it to
       ``limit_side_len``; "none" (refsw's addition): no scaling;
    3. each side truncated to an integer, then rounded to the nearest multiple of 32
       (``round(n / 32) * 32``, Python's round: ties to even).

    The picture is resized to that size with OpenCV's bilinear ``cv2.resize`` (no padding)."""
    h, w = (int(v) for v in picture_size)
    steps = []
    if max(h, w) > max_side_len:
        r = max_side_len / (h if h > w else w)
        h, w = int(round(int(h * r) / 32) * 32), int(round(int(w * r) / 32) * 32)
        steps.append((h, w))
    if limit_type == "min":
        r = limit_side_len / (h if h < w else w) if min(h, w) < limit_side_len else 1.0
    elif limit_type == "max":
        r = limit_side_len / (h if h > w else w) if max(h, w) > limit_side_len else 1.0
    elif limit_type == "none":
        r = 1.0
    else:
        raise ValueError(f"limit_type must be min, max or none, not {limit_type!r}")
    h, w = int(round(int(h * r) / 32) * 32), int(round(int(w * r) / 32) * 32)
    if h <= 0 or w <= 0:
        raise ValueError(f"picture {picture_size[1]}x{picture_size[0]} is too small for the text detector")
    return (h, w), steps


class PpOcrTextDetector(OnnxSplitNetwork):
    """PP-OCRv4 text detection (PP-LCNetV3 backbone, RSE-FPN neck, DBNet head) from the
    rapidocr-onnxruntime 1.4.4 wheel (Apache-2.0), split at the neck outputs
    ``p2o.Add.277``, ``.271``, ``.265``, ``.259`` (24 channels at strides 4, 8, 16, 32).

    Pre-processing as rapidocr's detector: RGB -> BGR, resized by :func:`resize_rule`
    (``cv2.resize``, bilinear), ``(x / 255 - 0.5) / 0.5``, NCHW float32.  Post-processing
    as its ``DBPostProcess`` and ``filter_tag_det_res`` (re-implemented here with numpy,
    OpenCV and pyclipper, the same operations in the same order): the probability map
    binarised at ``thresh`` (0.3) and dilated by a 2 x 2 kernel; per contour the
    minimum-area rectangle (shorter side >= 3 map samples), its score the mean probability
    inside it (rejected below ``box_thresh``, 0.5), expanded by the DB unclip (offset
    distance = area x ``unclip_ratio`` (1.6) / perimeter, round joins), its minimum-area
    rectangle again (shorter side >= 5), scaled to the picture and rounded, the corners
    clipped to [0, W-1] x [0, H-1] and truncated, rectangles 3 samples wide or high
    or less dropped.  A detection is the axis-aligned hull of a rectangle (x1 = the
    largest corner x) with its score, label ``text``; :meth:`quads` gives the rectangles.

    Settings: thresh, box_thresh, unclip_ratio, max_candidates (1000), use_dilation (1),
    limit_side_len (736), limit_type ("min"; "none" keeps the picture's size when it is a
    multiple of 32), max_side_len (2000), threads (1).
    """

    name = "ppocr_det"
    labels = ("text",)
    default_threshold = 0.5

    def __init__(self, thresh: float = 0.3, box_thresh: float = 0.5, unclip_ratio: float = 1.6,
                 max_candidates: int = 1000, use_dilation: int = 1, limit_side_len: int = 736,
                 limit_type: str = "min", max_side_len: int = 2000, threads: int = 1, cache: str | None = None):
        self.cv2 = _need("cv2", "the ppocr_det split network")
        self.pyclipper = _need("pyclipper", "the ppocr_det split network")
        self.cv2.setNumThreads(1)
        if limit_type not in ("min", "max", "none"):
            raise ValueError(f"ppocr_det: limit_type must be min, max or none, not {limit_type!r}")
        if not (0 < thresh < 1 and 0 <= box_thresh <= 1 and unclip_ratio > 0 and max_candidates >= 1):
            raise ValueError(f"ppocr_det: thresh {thresh} (0..1), box_thresh {box_thresh} (0..1), unclip_ratio "
                             f"{unclip_ratio} (> 0), max_candidates {max_candidates} (>= 1)")
        self.thresh, self.box_thresh, self.unclip_ratio = float(thresh), float(box_thresh), float(unclip_ratio)
        self.max_candidates, self.use_dilation = int(max_candidates), bool(int(use_dilation))
        self.limit_side_len, self.limit_type, self.max_side_len = int(limit_side_len), limit_type, int(max_side_len)
        model = ppocr_model_path()
        sha = _sha256(model)
        if sha != PPOCR_SHA256:
            raise ValueError(f"ppocr_det: {model} has sha256 {sha}; refsw is pinned to the detector of "
                             f"rapidocr-onnxruntime 1.4.4 ({PPOCR_SHA256}): pip install --no-deps "
                             f"rapidocr-onnxruntime==1.4.4")
        p1, p2 = split_onnx(model, [c[0] for c in PPOCR_CUT], input_names=[PPOCR_INPUT],
                            output_names=[PPOCR_OUTPUT], cache=cache, model_sha256=sha)
        super().__init__(p1, p2, PPOCR_CUT, name="ppocr_det", input_name=PPOCR_INPUT, output_names=[PPOCR_OUTPUT],
                         full_model=model, threads=threads, labels=("text",))

    # -- pre-processing ------------------------------------------------------
    def input_size(self, picture_size):
        return resize_rule(picture_size, self.limit_side_len, self.limit_type, self.max_side_len)[0]

    def preprocess(self, rgb):
        cv2 = self.cv2
        img = np.ascontiguousarray(rgb[..., ::-1])           # BGR, as rapidocr loads pictures
        (h, w), steps = resize_rule(img.shape[:2], self.limit_side_len, self.limit_type, self.max_side_len)
        for sh, sw in steps:
            img = cv2.resize(img, (sw, sh))
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h))
        # rapidocr's arithmetic: float32 x / 255, then float64 mean and std, then float32
        x = (img.astype(np.float32) * (1 / 255.0) - _HALF) / _HALF
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None].astype(np.float32))

    # -- post-processing -----------------------------------------------------
    def postprocess(self, out, picture_size) -> list[Detection]:
        quads, scores = self.quads(out, picture_size)
        return [Detection(float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max()),
                          float(s), "text") for q, s in zip(quads, scores)]

    def quads(self, out, picture_size):
        """The text rectangles (K x 4 x 2 float32, corners clockwise from top-left, in
        picture samples) and their scores, as rapidocr's detector returns them."""
        pred = out[PPOCR_OUTPUT] if isinstance(out, dict) else out
        pred = np.asarray(pred)[0, 0]
        H, W = (int(v) for v in picture_size)
        bitmap = pred > self.thresh
        mask = self.cv2.dilate(bitmap.astype(np.uint8), np.array([[1, 1], [1, 1]])) if self.use_dilation \
            else bitmap
        boxes, scores = self._boxes_from_bitmap(pred, mask, W, H)
        quads, kept = [], []
        for box, s in zip(boxes, scores):
            box = _order_clockwise(box.astype(np.float32))
            box[:, 0] = np.trunc(np.clip(box[:, 0], 0, W - 1))
            box[:, 1] = np.trunc(np.clip(box[:, 1], 0, H - 1))
            if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
                continue
            quads.append(box)
            kept.append(s)
        return np.array(quads, np.float32).reshape(-1, 4, 2), kept

    def _boxes_from_bitmap(self, pred, bitmap, dest_w, dest_h):
        cv2 = self.cv2
        height, width = bitmap.shape
        contours = cv2.findContours((bitmap * 255).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[-2]
        boxes, scores = [], []
        for contour in contours[:self.max_candidates]:
            points, sside = self._mini_box(contour)
            if sside < 3:
                continue
            score = self._box_score(pred, points.reshape(-1, 2))
            if self.box_thresh > score:
                continue
            box, sside = self._mini_box(self._unclip(points))
            if sside < 5:
                continue
            box[:, 0] = np.clip(np.round(box[:, 0] / width * dest_w), 0, dest_w)
            box[:, 1] = np.clip(np.round(box[:, 1] / height * dest_h), 0, dest_h)
            boxes.append(box.astype(np.int32))
            scores.append(float(score))
        return boxes, scores

    def _mini_box(self, contour):
        rect = self.cv2.minAreaRect(contour)
        p = sorted(list(self.cv2.boxPoints(rect)), key=lambda x: x[0])
        i1, i4 = (0, 1) if p[1][1] > p[0][1] else (1, 0)
        i2, i3 = (2, 3) if p[3][1] > p[2][1] else (3, 2)
        return np.array([p[i1], p[i2], p[i3], p[i4]]), min(rect[1])

    def _box_score(self, pred, box):
        cv2 = self.cv2
        h, w = pred.shape[:2]
        box = box.copy()
        xmin = np.clip(np.floor(box[:, 0].min()).astype(np.int32), 0, w - 1)
        xmax = np.clip(np.ceil(box[:, 0].max()).astype(np.int32), 0, w - 1)
        ymin = np.clip(np.floor(box[:, 1].min()).astype(np.int32), 0, h - 1)
        ymax = np.clip(np.ceil(box[:, 1].max()).astype(np.int32), 0, h - 1)
        mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
        box[:, 0] -= xmin
        box[:, 1] -= ymin
        cv2.fillPoly(mask, box.reshape(1, -1, 2).astype(np.int32), 1)
        return cv2.mean(pred[ymin:ymax + 1, xmin:xmax + 1], mask)[0]

    def _unclip(self, box):
        b = np.asarray(box, np.float64)
        x, y = b[:, 0], b[:, 1]
        area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
        length = float(np.sum(np.hypot(np.roll(x, -1) - x, np.roll(y, -1) - y)))
        distance = area * self.unclip_ratio / length
        pc = self.pyclipper
        offset = pc.PyclipperOffset()
        offset.AddPath(box, pc.JT_ROUND, pc.ET_CLOSEDPOLYGON)
        return np.array(offset.Execute(distance)).reshape((-1, 1, 2))


def _order_clockwise(pts):
    """Top-left, top-right, bottom-right, bottom-left (rapidocr's order_points_clockwise)."""
    xs = pts[np.argsort(pts[:, 0]), :]
    left, right = xs[:2, :], xs[2:, :]
    tl, bl = left[np.argsort(left[:, 1]), :]
    tr, br = right[np.argsort(right[:, 1]), :]
    return np.array([tl, tr, br, bl], dtype=np.float32)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

def ppocr_det(**kw) -> PpOcrTextDetector:
    return PpOcrTextDetector(**kw)


SPLIT_NETWORKS = {"ppocr_det": ppocr_det}


def get_split_network(name: str, **kw) -> SplitNetwork:
    """A split network by registry name (:data:`SPLIT_NETWORKS`) or ``module:Class``
    (a :class:`SplitNetwork`, or a torch plug-in wrapped by :class:`TorchSplitNetwork`;
    the module must be importable, e.g. through PYTHONPATH); ``kw`` are its settings."""
    net = build_network(SPLIT_NETWORKS, name, kw, "split network")
    if isinstance(net, SplitNetwork):
        return net
    if hasattr(net, "part1_module"):
        return TorchSplitNetwork(net)
    if all(hasattr(net, a) for a in ("part1", "part2", "postprocess", "cut")):
        return net
    raise ValueError(f"split network {name!r}: {type(net).__name__} is neither a SplitNetwork nor a plug-in "
                     f"with part1_module / part2_module (see refsw.tasks.split)")
