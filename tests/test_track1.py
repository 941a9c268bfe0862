"""Track 1 foundations (#29): split networks (refsw.tasks.split), the text-detection
metric (refsw.ctc.text_metric) and the text test set (refsw.tasks.text_data).

The split-network tests need the track1 packages (onnx, onnxruntime, pyclipper,
opencv-python-headless) and the rapidocr-onnxruntime wheel for its model;
scripts/setup.sh installs them.  The metric tests need nothing but numpy."""
import json
import os

import numpy as np
import pytest

from refsw.ctc import text_metric as tm
from refsw.tasks import Detection, TaskNetwork

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACK1 = "the track1 packages (pip install -e '.[track1]'; pip install --no-deps rapidocr-onnxruntime==1.4.4: " \
         "scripts/setup.sh does both)"


def _need_track1():
    for mod in ("onnx", "onnxruntime", "pyclipper", "cv2"):
        pytest.importorskip(mod, reason=f"{mod} is missing: {TRACK1}")


def _need_ppocr():
    _need_track1()
    from refsw.tasks.split import ppocr_model_path
    try:
        ppocr_model_path()
    except ValueError as e:
        pytest.skip(f"{e}; {TRACK1}")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    _need_ppocr()
    from refsw.tasks.split import get_split_network
    return get_split_network("ppocr_det", cache=str(tmp_path_factory.mktemp("split")))


@pytest.fixture(scope="module")
def text_picture():
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    from refsw.tasks import text_data
    return text_data.make_picture(1, 0)


# ---------------------------------------------------------------------------
# split network
# ---------------------------------------------------------------------------

def test_round_trip_equals_full_model(net, text_picture):
    rgb, boxes, _ = text_picture
    feats = net.part1(rgb)
    out = net.part2(feats)
    full = net.full(rgb)
    assert list(out) == ["sigmoid_0.tmp_0"]
    assert np.array_equal(out["sigmoid_0.tmp_0"], full["sigmoid_0.tmp_0"])   # exactly, not approximately
    dets = net.postprocess(out, rgb.shape[:2])
    assert dets == net.run(rgb) and all(d.label == "text" and 0.5 <= d.score <= 1 for d in dets)
    assert tm.text_prf([boxes], [dets])["F1"] == 1.0


def test_torch_head_equals_onnx_part2(net, text_picture):
    """refsw.tasks.ppocr_head (part 2 in torch, for training through it) gives onnxruntime's map."""
    torch = pytest.importorskip("torch")
    from refsw.tasks.ppocr_head import CUT, build_head
    rgb, _, _ = text_picture
    feats = net.part1(rgb)
    ref = net.part2(feats)["sigmoid_0.tmp_0"]
    with torch.no_grad():
        got = build_head()(*[torch.from_numpy(feats[n]) for n in CUT]).numpy()
    assert got.shape == ref.shape and float(np.abs(got - ref).max()) < 1e-5
    with torch.no_grad():     # and it depends on every cut tensor
        for i in range(4):
            f = [torch.from_numpy(feats[n]) for n in CUT]
            f[i] = f[i] + 1.0
            assert float(np.abs(build_head()(*f).numpy() - ref).max()) > 1e-3


def test_cut_tensors_shapes_and_strides(net):
    assert [(c.name, c.channels, c.stride) for c in net.cut] == [
        ("p2o.Add.277", 24, 4), ("p2o.Add.271", 24, 8), ("p2o.Add.265", 24, 16), ("p2o.Add.259", 24, 32)]
    rgb = np.full((384, 512, 3), 128, np.uint8)
    # rapidocr's rule: the shorter side is scaled to 736, each side rounded to a multiple of 32
    assert net.input_size((384, 512)) == (736, 992)
    x = net.preprocess(rgb)
    assert x.shape == (1, 3, 736, 992) and x.dtype == np.float32
    feats = net.part1(rgb)
    assert list(feats) == [c.name for c in net.cut]
    shapes = {k: v.shape for k, v in feats.items()}
    assert shapes == net.cut_shapes((384, 512)) == {
        "p2o.Add.277": (1, 24, 184, 248), "p2o.Add.271": (1, 24, 92, 124),
        "p2o.Add.265": (1, 24, 46, 62), "p2o.Add.259": (1, 24, 23, 31)}
    for c in net.cut:
        assert feats[c.name].dtype == np.float32
        assert (736 // feats[c.name].shape[2], 992 // feats[c.name].shape[3]) == (c.stride, c.stride)


def test_native_size_setting(tmp_path):
    _need_ppocr()
    from refsw.tasks.split import get_split_network, resize_rule
    n = get_split_network("ppocr_det", limit_type="none", cache=str(tmp_path))
    assert n.cut_shapes((384, 512))["p2o.Add.277"] == (1, 24, 96, 128)
    assert n.part1(np.zeros((384, 512, 3), np.uint8))["p2o.Add.259"].shape == (1, 24, 12, 16)
    assert resize_rule((100, 50), limit_type="none")[0] == (96, 64)     # round(n / 32) * 32
    with pytest.raises(ValueError, match="limit_type"):
        get_split_network("ppocr_det", limit_type="square")


def test_part2_checks_the_cut_tensors(net):
    feats = net.part1(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="needs the tensors"):
        net.part2({k: v for k, v in list(feats.items())[:3]})
    bad = dict(feats, **{"p2o.Add.277": feats["p2o.Add.277"][:, :12]})
    with pytest.raises(ValueError, match=r"\(1, 24, h, w\)"):
        net.part2(bad)


def test_post_processing_equals_rapidocr(net, text_picture):
    """Our numpy/OpenCV/pyclipper DB post-processing gives rapidocr's own rectangles."""
    for mod in ("shapely", "yaml"):
        pytest.importorskip(mod, reason="rapidocr's own detector code needs it (scripts/setup.sh installs it)")
    from rapidocr_onnxruntime.ch_ppocr_det import TextDetector
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH, read_yaml, update_model_path
    cfg = update_model_path(read_yaml(DEFAULT_CFG_PATH))["Det"]
    cfg.update(intra_op_num_threads=1, inter_op_num_threads=1)
    ref = TextDetector(cfg)
    rgb = text_picture[0]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    assert np.array_equal(ref.get_preprocess(max(rgb.shape[:2]))(bgr), net.preprocess(rgb))
    from rapidocr_onnxruntime.utils import reduce_max_side
    from refsw.tasks.split import resize_rule
    for hw in ((384, 512), (100, 50), (3000, 1000), (700, 2500), (736, 736), (1000, 1500)):
        img = np.zeros((*hw, 3), np.uint8)
        if max(hw) > 2000:
            img = reduce_max_side(img, 2000)[0]
        want = ref.get_preprocess(max(img.shape[:2]))(img).shape[2:]
        assert resize_rule(hw)[0] == want, hw
    quads, scores = net.quads(net.part2(net.part1(rgb)), rgb.shape[:2])
    want, _ = ref(bgr)
    assert len(quads) == len(want) > 0
    assert np.array_equal(quads, np.asarray(want, np.float32).reshape(-1, 4, 2))


def test_onnx_split_from_one_file(tmp_path):
    """Any ONNX model + cut tensor names: split into the cache once, strides probed."""
    _need_track1()
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from refsw.tasks.split import OnnxSplitNetwork
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.3, (2, 4, 3, 3)).astype(np.float32), "w2")
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["cut"]),
         helper.make_node("Conv", ["cut", "w2"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, "h4", "w4"])], [w1, w2])
    model = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(model))
    cache = tmp_path / "cache"
    net = OnnxSplitNetwork.from_model(model, ["cut"], cache=cache, name="tiny")
    assert [(c.name, c.channels, c.stride) for c in net.cut] == [("cut", 4, 2)]
    parts = sorted(p.name for p in cache.rglob("*.onnx"))
    assert parts == ["part1.onnx", "part2.onnx"]
    rgb = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    feats = net.part1(rgb)
    assert feats["cut"].shape == (1, 4, 16, 24)
    assert np.array_equal(net.part2(feats)["y"], net.full(rgb)["y"])
    mtime = [p.stat().st_mtime_ns for p in cache.rglob("*.onnx")]
    OnnxSplitNetwork.from_model(model, ["cut"], cache=cache)          # reuses the cached parts
    assert [p.stat().st_mtime_ns for p in cache.rglob("*.onnx")] == mtime
    with pytest.raises(ValueError, match="splitting"):
        OnnxSplitNetwork.from_model(model, ["no_such_tensor"], cache=cache)


class TinyPlugin:
    """A module:Class plug-in returning torch modules (what a Detectron2 FPN wrapper provides)."""
    name = "tiny_torch"
    labels = ("blob",)
    cut = [("f4", 3, 4), ("f8", 3, 8)]

    def __init__(self, threshold: float = 0.5):
        import torch
        from torch import nn

        class Part1(nn.Module):
            def forward(self, x):
                f4 = nn.functional.avg_pool2d(x, 4)
                return {"f4": f4, "f8": nn.functional.avg_pool2d(f4, 2)}

        class Part2(nn.Module):
            def forward(self, feats):
                return {"mask": (feats["f4"].mean(1, keepdim=True) > 0.5).float(), "n": torch.tensor(2)}

        self.part1_module, self.part2_module, self.threshold = Part1(), Part2(), threshold

    def preprocess(self, rgb):
        return rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255

    def postprocess(self, out, picture_size):
        ys, xs = np.nonzero(out["mask"][0, 0])
        if not len(ys):
            return []
        return [Detection(xs.min() * 4.0, ys.min() * 4.0, xs.max() * 4.0 + 4, ys.max() * 4.0 + 4, 1.0, "blob")]


def test_torch_plugin():
    pytest.importorskip("torch")
    from refsw.tasks.split import TorchSplitNetwork, get_split_network
    net = get_split_network("test_track1:TinyPlugin", threshold=0.4)
    assert isinstance(net, TorchSplitNetwork) and net.name == "tiny_torch"
    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[16:32, 40:72] = 255
    feats = net.part1(rgb)
    assert {k: v.shape for k, v in feats.items()} == net.cut_shapes((64, 96)) == {
        "f4": (1, 3, 16, 24), "f8": (1, 3, 8, 12)}
    out = net.part2(feats)
    assert isinstance(out["mask"], np.ndarray) and int(out["n"]) == 2
    assert net.run(rgb) == net.detect(rgb) == [Detection(40.0, 16.0, 72.0, 32.0, 1.0, "blob")]
    with pytest.raises(ValueError, match="unknown split network"):
        get_split_network("nope")
    with pytest.raises(ValueError, match="unexpected keyword"):
        get_split_network("test_track1:TinyPlugin", size=3)


# ---------------------------------------------------------------------------
# metric
# ---------------------------------------------------------------------------

def test_metric_hand_made_boxes():
    gt = [(0, 0, 10, 10), (20, 0, 30, 10), (0, 20, 10, 30)]
    dets = [(0, 0, 10, 10, 0.9),        # exact: TP
            (21, 0, 31, 10, 0.8),       # IoU 9*10 / (110 + 100 - 90) = 0.75: TP
            (0, 25, 10, 35, 0.7),       # IoU 50 / 150 = 0.33: FP (and GT 3 a FN)
            (50, 50, 60, 60, 0.6)]      # nowhere: FP
    r = tm.text_prf([gt], [dets])
    assert (r["tp"], r["fp"], r["fn"]) == (2, 2, 1)
    assert r["precision"] == 0.5 and r["recall"] == pytest.approx(2 / 3)
    assert r["F1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # exactly IoU 0.5 counts: box (0,0,10,10) vs (0,0,10,20) has IoU 100 / 200
    assert tm.text_prf([[(0, 0, 10, 20)]], [[(0, 0, 10, 10)]])["tp"] == 1
    assert tm.text_prf([[(0, 0, 10, 21)]], [[(0, 0, 10, 10)]])["tp"] == 0


def test_metric_greedy_one_to_one_by_iou():
    # one detection between two boxes: it goes to the box it overlaps most; the other is missed
    gt = [(0, 0, 10, 10), (2, 0, 12, 10)]
    assert tm.match_boxes([(1.5, 0, 11.5, 10)], gt) == [(0, 1, pytest.approx(95 / 105))]
    # two detections on one box: the better one matches, the other is a false positive, whatever the scores
    r = tm.text_prf([[(0, 0, 10, 10)]], [[(0, 0, 10, 9, 0.99), (0, 0, 10, 10, 0.1)]])
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 0)
    assert tm.match_boxes([(0, 0, 10, 9), (0, 0, 10, 10)], [(0, 0, 10, 10)]) == [(1, 0, 1.0)]
    # greedy by IoU (not optimal assignment): the 0.9 pair is taken first
    gt = [(0, 0, 10, 10), (0, 0, 10, 6)]
    m = tm.match_boxes([(0, 0, 10, 9), (0, 0, 10, 5.5)], gt)
    assert sorted((i, j) for i, j, _ in m) == [(0, 0), (1, 1)]
    # Detection objects are accepted
    assert tm.text_prf([[(0, 0, 4, 4)]], [[Detection(0, 0, 4, 4, 0.7, "text")]])["F1"] == 1.0


def test_metric_empty_cases_and_pooling():
    assert tm.text_prf([[]], [[]])["F1"] == 1.0                     # no text, nothing found
    r = tm.text_prf([[]], [[(0, 0, 5, 5)]])                        # no text, a false detection
    assert (r["precision"], r["recall"], r["F1"]) == (0.0, 1.0, 0.0)
    r = tm.text_prf([[(0, 0, 5, 5)]], [[]])                         # text, nothing found
    assert (r["precision"], r["recall"], r["F1"]) == (1.0, 0.0, 0.0)
    # counts are pooled over pictures before P, R and F1
    r = tm.text_prf([[(0, 0, 5, 5)], [], [(0, 0, 5, 5), (10, 10, 15, 15)]],
                    [[(0, 0, 5, 5)], [(1, 1, 2, 2)], [(0, 0, 5, 5)]])
    assert (r["tp"], r["fp"], r["fn"]) == (2, 1, 1)
    assert tm.pooled_prf([{"tp": 1, "fp": 0, "fn": 0}, {"tp": 1, "fp": 1, "fn": 1}]) == r
    with pytest.raises(ValueError):
        tm.text_prf([[]], [[], []])


class FixedNet(TaskNetwork):
    name = "fixed_text"

    def detect(self, picture):
        return [Detection(0, 0, 10, 10, 0.9, "text"), Detection(40, 40, 50, 50, 0.8, "text")]


def test_text_f1_task_metric():
    """The CTC metric reads the item's boxes (a manifest extra) and reports F1, P, R and counts."""
    item = {"name": "t", "extra": {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]]}}
    m = tm.TextF1(FixedNet())
    v = m.evaluate(item, [None], [None])
    assert (v["F1"], v["precision"], v["recall"]) == (0.5, 0.5, 0.5)
    d = v["detail"]["F1"]
    assert (d["tp"], d["fp"], d["fn"], d["network"], d["pictures"]) == (1, 1, 1, "fixed_text", 1)
    assert m.evaluate_detections(item, [None], [[(0, 0, 10, 10, 1.0), (20, 20, 30, 30, 1.0)]])["F1"] == 1.0
    m2 = tm.text_f1(item, {"TaskNetwork": "test_track1:FixedNet", "TaskNetworkArgs": ""})
    assert m2.evaluate(item, [None], [None])["F1"] == 0.5
    with pytest.raises(ValueError, match="no 'boxes'"):
        m.evaluate({"name": "u", "extra": {}}, [None], [None])
    with pytest.raises(ValueError, match="2 decoded"):
        m.evaluate(item, [None, None], [None, None])


# ---------------------------------------------------------------------------
# test set
# ---------------------------------------------------------------------------

def test_text_set_generation_is_deterministic(tmp_path):
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    from refsw.tasks import text_data
    a = text_data.build(7, seed=1)
    b = text_data.build(7, seed=1)
    assert [text_data.samples_sha256(p[0]) for p in a] == [text_data.samples_sha256(p[0]) for p in b]
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    assert [len(p[1]) for p in a][5] == 0 and all(len(p[1]) for i, p in enumerate(a) if i != 5)
    for img, boxes, meta in a:
        assert img.shape == (384, 512, 3) and img.dtype == np.uint8
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= 512) and np.all(boxes[:, 3] <= 384)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert text_data.samples_sha256(text_data.make_picture(1, 3)[0]) == text_data.samples_sha256(a[3][0])
    # written files: the manifest pins what refsw.ctc.testsets computes from the PNGs
    from refsw.ctc.testsets import load_manifest, prepare
    text_data.write(tmp_path / "png", a[:2], 1, manifest=str(tmp_path / "t.json"))
    ts = prepare(load_manifest(tmp_path / "t.json"), verify=True)
    assert [it.extra["boxes"] for it in ts.items] == [p[1].tolist() for p in a[:2]]
    labels = json.loads((tmp_path / "png" / "labels.json").read_text())
    assert labels["files"]["text_0000.png"]["boxes"] == a[0][1].tolist()


def test_manifest_matches_the_generator():
    """ctc/testsets/text.json pins the pictures text_data generates (with the tested versions)."""
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    from refsw.ctc.testsets import dist_version
    from refsw.tasks import text_data
    man = json.loads(open(os.path.join(ROOT, "ctc", "testsets", "text.json"), encoding="utf-8").read())
    other = {d: (v, dist_version(d)) for d, v in man["tested_with"].items() if dist_version(d) != v}
    if other:
        pytest.skip(f"the manifest was made with other versions (manifest, installed): {other}")
    assert len(man["items"]) == 24
    for i in (0, 5, 17):
        img, boxes, _ = text_data.make_picture(1, i)
        it = man["items"][i]
        assert it["name"] == f"text_{i:04d}" and (it["width"], it["height"]) == (512, 384)
        assert it["sha256"] == text_data.samples_sha256(img)
        assert it["boxes"] == boxes.tolist()


def test_pooled_points_of_a_run(tmp_path):
    """python -m refsw.ctc.text_metric DIR pools TP/FP/FN over the items of each rate point."""
    def point(codec, seq, label, bits, tp, fp, fn, status="ok"):
        d = tmp_path / codec / seq
        d.mkdir(parents=True, exist_ok=True)
        r = {"codec": codec, "sequence": seq, "label": label, "status": status, "width": 64, "height": 32,
             "frames": 1, "bits": bits, "task_detail": {"F1": {"tp": tp, "fp": fp, "fn": fn}}}
        (d / f"{label}.json").write_text(json.dumps(r))
    point("jpeg", "a", "q10", 1024, 1, 1, 0)
    point("jpeg", "b", "q10", 1024, 2, 0, 1)
    point("jpeg", "a", "q50", 4096, 1, 0, 0)
    point("jpeg", "b", "q50", 4096, 3, 0, 0, status="error")        # q50 is not complete: left out
    rows = tm.pooled_points(str(tmp_path))
    assert len(rows) == 1
    r = rows[0]
    assert (r["codec"], r["label"], r["items"], r["bpp"]) == ("jpeg", "q10", 2, 2048 / (2 * 64 * 32))
    assert (r["tp"], r["fp"], r["fn"], r["precision"], r["recall"]) == (3, 1, 1, 0.75, 0.75)
    assert tm.main([str(tmp_path)]) == 0


def test_task_text_condition():
    from refsw.ctc.conditions import parse_condition
    cond = parse_condition(["--cfg", os.path.join(ROOT, "ctc", "conditions", "task_text.cfg")])
    assert cond.ctc["TestSet"] == "text" and cond.ctc["TaskMetric"] == "refsw.ctc.text_metric:text_f1"
    assert cond.ctc["TaskNetwork"] == "ppocr_det"


def test_detector_on_uncompressed_text_pictures(net):
    """The metric measures coding damage, not the detector: on uncompressed pictures of the
    set it finds the words (the whole set of 24: P 0.97, R 1.0, F1 0.99)."""
    pytest.importorskip("skimage")
    pytest.importorskip("matplotlib")
    from refsw.tasks import text_data
    pics = [text_data.make_picture(1, i) for i in range(6)]
    r = tm.text_prf([p[1] for p in pics], [net.run(p[0]) for p in pics])
    assert r["F1"] >= 0.9 and r["recall"] >= 0.9, r
