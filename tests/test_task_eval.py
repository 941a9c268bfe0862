"""Task-branch evaluation through the CTC tooling: the face AP metric, pooled AP,
the runner's TaskBranch path, and pinned test-set manifests."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from refsw.ctc.conditions import parse_condition
from refsw.ctc.testsets import TestSetError as TSError, load_testset, pin_directory, prepare
from refsw.picture import Picture, write_png
from refsw.tasks import Detection
from refsw.tasks.evaluate import ap_from_matches, average_precision
from refsw.ctc.detection_metric import DetectionAP


def _rgb(w, h, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [((xx * (2 + c) + yy * 3 + seed * 7) % 256 + rng.integers(0, 16, (h, w))).clip(0, 255).astype(np.uint16)
              for c in range(3)]
    return Picture(planes, "444", 8, "rgb")


class FakeNet:
    """A 'face' wherever the first sample says: x offset = planes[0][0, 0] // 8."""
    name = "fake"

    def __init__(self):
        self.calls = 0

    def detect(self, pic):
        self.calls += 1
        x = int(pic.planes[0][0, 0]) // 8
        return [Detection(x, 8, x + 24, 32, 0.95, "face"), Detection(40, 40, 60, 60, 0.5, "face")]


def fake_face_ap(item, ctc):
    return DetectionAP(net=FakeNet())


def _with_first(pic, v):
    planes = [p.copy() for p in pic.planes]
    planes[0][0, 0] = v
    return Picture(planes, pic.chroma_format, pic.bit_depth, pic.colour_space)


def test_face_ap_metric_and_source_cache(tmp_path):
    src = _with_first(_rgb(64, 64), 0)
    net = FakeNet()
    m = DetectionAP(net=net, cache_dir=str(tmp_path))
    item = {"name": "x", "prepared_sha256": "ab" * 32}
    same = m.evaluate(item, [src], [src])
    assert same["AP50"] == pytest.approx(1.0)          # GT: the 0.95 box only (score >= 0.9)
    d = same["detail"]["AP50"]
    assert d["npos"] == 1 and d["pictures"] == 1 and [t for _, t in d["matches"]] == [1, 0]
    assert m.evaluate(item, [src], [_with_first(src, 255)])["AP50"] == 0.0   # box moved by 31 px
    assert net.calls == 3                               # the source once
    assert os.path.isfile(tmp_path / f"fake-{'ab' * 32}.json")
    m2 = DetectionAP(net=FakeNet(), cache_dir=str(tmp_path))
    assert m2.evaluate_detections(item, [src], [[(0.0, 8.0, 24.0, 32.0, 0.3)]])["AP50"] == pytest.approx(1.0)
    assert m2.net.calls == 0                            # source detections from the disk cache


def test_pooled_ap_equals_ap_over_the_whole_set():
    rng = np.random.default_rng(1)
    gts, dets = [], []
    for _ in range(6):
        g = [tuple(b) for b in np.c_[rng.uniform(0, 50, (3, 2)), rng.uniform(60, 90, (3, 2))]][:rng.integers(0, 4)]
        gts.append(g)
        dets.append([(b[0] + rng.normal(0, 4), b[1], b[2], b[3] + rng.normal(0, 4), float(rng.random())) for b in g]
                    + [tuple(rng.uniform(0, 90, 4)) + (float(rng.random()),)])
    m = DetectionAP(net=FakeNet())
    parts = []
    for g, ds in zip(gts, dets):
        m.ground_truth = lambda item, sources, g=g: [g]
        parts.append(m.evaluate_detections({"name": "p"}, [None], [ds])["detail"]["AP50"])
    pooled = ap_from_matches(sum(p["npos"] for p in parts), [m for p in parts for m in p["matches"]])
    assert pooled == pytest.approx(average_precision(gts, dets, 0.5), abs=1e-6)


def test_runner_task_branch_columns_and_report(tmp_path):
    from refsw.ctc.report import branch_comparison, build_report
    from refsw.ctc.runner import run
    d = tmp_path / "imgs"
    d.mkdir()
    write_png(d / "tiny.png", _with_first(_rgb(128, 64, 3), 64))
    cfg = tmp_path / "tb.cfg"
    cfg.write_text(f"TestSet : {d}\nCodingMode : learned\nQualityPoints : 36\nJpegQualities : 30,80\n"
                   f"TaskMetric : {__name__}:fake_face_ap\nTaskBranch : face\nMsSsim : 0\nPlots : 0\n")
    cond = parse_condition(["--cfg", str(cfg)])
    res = run(cond, ["jpeg", "refsw"], out_dir=str(tmp_path / "o"), jobs=1, progress=False)
    assert all(r["status"] == "ok" for r in res.results), [r.get("traceback") for r in res.results]
    r = next(r for r in res.results if r["codec"] == "refsw")
    assert 0 < r["bits_base"] < r["bits"] and r["bpp_base"] == pytest.approx(r["bits_base"] / (128 * 64))
    assert r["branch_dec_time"] > 0 and "task_branch_AP50" in r and r["task_AP50"] >= 0
    assert set(r["task_detail"]) == {"AP50", "branch_AP50"}
    assert os.path.isfile(tmp_path / "o" / "refsw" / "tiny" / "q36.base.bin")
    with open(tmp_path / "o" / "results.csv", newline="") as f:
        row = next(x for x in csv.DictReader(f) if x["codec"] == "refsw")
    assert {"bits_base", "bpp_base", "branch_dec_time", "task_AP50", "task_branch_AP50"} <= set(row)
    rows = branch_comparison(res.results, ["jpeg"], "AP50")
    assert [(x["path"], x["codec"], len(x["curve"])) for x in rows] == [("a", "refsw", 1), ("b", "refsw", 1),
                                                                        ("c", "jpeg", 2)]
    assert isinstance(rows[1]["bd"], str)                # one refsw point: BD undefined, with the reason
    path, summary = build_report(res, cond, "refsw", "jpeg", plots=False)
    assert "## Task branch: AP50" in open(path).read() and any(s.startswith("Task branch") for s in summary)


def test_pin_directory_manifest(tmp_path):
    d = tmp_path / "pics"
    d.mkdir()
    for i in range(2):
        write_png(d / f"p{i}.png", _rgb(32, 16, i))
    man = tmp_path / "sets" / "mine.json"
    ts = pin_directory(d, man, licence="CC0", provenance="test")
    data = json.loads(man.read_text())
    assert data["root"] == os.path.join("..", "pics") and all(len(it["sha256"]) == 64 for it in data["items"])
    prepare(load_testset(str(man)))                      # verifies every sha256
    write_png(d / "p1.png", _rgb(32, 16, 5))
    with pytest.raises(TSError, match="sha256"):
        prepare(load_testset(str(man)))
    assert [it.name for it in ts.items] == ["p0", "p1"]


def test_face_manifest_and_condition():
    ts = load_testset("face")
    assert ts.kind == "image" and len(ts.items) >= 100 and all(it.sha256 for it in ts.items)
    cond = parse_condition(["--cfg", os.path.join(os.path.dirname(__file__), "..", "ctc", "conditions",
                                                  "task_face.cfg")])
    assert cond.ctc.TaskBranch == "face" and cond.enc.CodingMode == "learned"
    assert cond.ctc.TaskMetric == "refsw.ctc.detection_metric:face_ap"


def test_branch_comparison_on_synthetic_curves():
    from refsw.ctc.report import branch_comparison, pooled_curve

    def point(codec, seq, label, bits, tp, base_tp=None):
        def det(ok):
            return {"npos": 1, "matches": [[0.9, 1]] if ok else [], "time": 0.01}

        r = {"codec": codec, "sequence": seq, "label": label, "status": "ok", "width": 32, "height": 32,
             "frames": 1, "bits": bits, "dec_time": 0.1, "task_detail": {"AP50": det(tp)}}
        if base_tp is not None:
            r.update(bits_base=bits // 2, branch_dec_time=0.05)
            r["task_detail"]["branch_AP50"] = det(base_tp)
        return r

    res = []
    for li, bits in enumerate((1000, 2000, 4000)):
        for s in range(4):                      # AP over the 4 items: (li + 1) / 4
            ok = s <= li
            res.append(point("refsw", f"s{s}", f"q{li}", bits, ok, ok))
            res.append(point("jpeg", f"s{s}", f"q{li}", 2 * bits, ok))
    res.append(dict(point("jpeg", "s0", "q9", 9000, True), status="error"))   # incomplete label: left out
    assert [p["ap"] for p in pooled_curve(res, "refsw", "AP50")] == [0.25, 0.5, 0.75]
    assert len(pooled_curve(res, "jpeg", "AP50")) == 3
    rows = branch_comparison(res, ["jpeg"], "AP50")
    assert rows[1]["bd"].value == pytest.approx(-50.0) and rows[2]["bd"].value == pytest.approx(-75.0)
    # BD-AP: (a) is (b) shifted left by a factor 2 in rate and AP rises 0.25 per doubling, so (a)
    # is 0.25 above over the common range; (c) is shifted by 4: the rate ranges only touch
    assert rows[1]["bd_q"].value == pytest.approx(0.25, abs=0.02)
    assert isinstance(rows[2]["bd_q"], str) and rows[0]["bd_q"] is None
    assert rows[0]["curve"][0]["dec_time"] == pytest.approx(0.05) and rows[1]["curve"][0]["net_time"] == 0.01
