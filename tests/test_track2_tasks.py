"""Track 2 beyond faces (#30): the safe ROI rule, the HOG people detector,
task networks with settings, thresholds in the network's own range."""
import os

import numpy as np
import pytest

from refsw import cfg as cfgmod
from refsw.decoder import Decoder
from refsw.encoder import Encoder, EncoderError
from refsw.options import ENCODER_OPTIONS
from refsw.tasks import Detection, TaskNetwork, get_task_network, parse_network_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


class NoDetections(TaskNetwork):
    """A detector that finds nothing (a clip without faces for MTCNN)."""
    name = "none"

    def detect(self, picture):
        return []


class TinyBox(TaskNetwork):
    name = "tiny"

    def detect(self, picture):
        return [Detection(0, 0, 2, 2, 0.99)]


def _people(n):
    from refsw.ctc.testsets import load_testset, prepare, read_item
    if not os.path.isfile(VTEST):
        pytest.skip("the people test set needs the Debian package opencv-doc (scripts/setup.sh installs it)")
    pytest.importorskip("cv2")
    ts = prepare(load_testset("people"), verify=True)
    it = ts.items[1]
    it.frames = n
    return read_item(it)


def _code(pics, *args):
    c, _ = cfgmod.parse(["--cfg", os.path.join(ROOT, "ctc", "ra.cfg"), "--PictureHash", "0", *args],
                        ENCODER_OPTIONS)
    enc = Encoder(c)
    data = enc.encode(pics)
    return [d.picture for d in Decoder().decode(data)], enc.log


def test_safe_roi_codes_a_picture_without_regions_as_it_is():
    """No region (or too small a region): the picture is not simplified, so the decoded
    video equals the one coded with the ROI tool off."""
    from conftest import synthetic_rgb
    from refsw.colour import rgb_to_ycbcr
    pics = [rgb_to_ycbcr(synthetic_rgb(64, 48, s), "420") for s in range(4)]
    ref, _ = _code(pics, "--RoiEnabled", "0")
    for det in ("test_track2_tasks:NoDetections", "test_track2_tasks:TinyBox"):
        out, log = _code(pics, "--RoiDetector", det)
        assert any("background simplified in 0 of 4 pictures" in line for line in log), log
        assert all(a == b for a, b in zip(out, ref))
    # a region that covers enough is simplified (RoiMinArea 0 takes any region)
    out, log = _code(pics, "--RoiDetector", "test_track2_tasks:TinyBox", "--RoiMinArea", "0")
    assert any("background simplified in 4 of 4 pictures" in line for line in log)
    assert not all(a == b for a, b in zip(out, ref))


def test_network_settings_and_thresholds():
    assert parse_network_args("upscale=2, scale=1.1,mode=fast") == {"upscale": 2, "scale": 1.1, "mode": "fast"}
    with pytest.raises(ValueError, match="not key=value"):
        parse_network_args("upscale")
    with pytest.raises(ValueError, match="task network 'full'"):
        get_task_network("full", bogus=1)
    with pytest.raises(ValueError, match="PYTHONPATH"):
        get_task_network("no_such_module_xyz:Net")
    # a threshold in the network's own range (HOG margins exceed 1)
    c, _ = cfgmod.parse(["--RoiThreshold", "1.5", "--RoiDetectorArgs", "upscale=2"], ENCODER_OPTIONS)
    assert c.RoiThreshold == 1.5
    c, _ = cfgmod.parse(["--cfg", os.path.join(ROOT, "ctc", "ra.cfg"), "--RoiDetectorArgs", "upscale"],
                        ENCODER_OPTIONS)
    from refsw.content import default_video_path
    from refsw.picture import open_input
    with pytest.raises(EncoderError, match="RoiDetectorArgs"):
        Encoder(c).encode(list(open_input(default_video_path(), max_frames=2)))
    assert "PYTHONPATH" in ENCODER_OPTIONS.help_text("refsw-encode")


def test_hog_people_detector_finds_pedestrians():
    pics = _people(3)
    net = get_task_network("hog", upscale=2)
    dets = [net.detect(p) for p in pics]
    assert all(len(d) >= 1 for d in dets), [len(d) for d in dets]
    assert all(d.label == "person" and d.x1 > d.x0 and d.y1 > d.y0 for ds in dets for d in ds)
    assert max(d.score for ds in dets for d in ds) > 1.0          # SVM margins, not probabilities


def test_shipped_ra_cfg_keeps_person_ap_on_a_clip_without_faces():
    """#30: with the shipped ctc/ra.cfg (ROI from the MTCNN face detector) a clip without
    faces is not blurred away: HOG's AP@0.5 on the decoded video stays close to that of the
    inner codec alone at the same QP."""
    from refsw.ctc.detection_metric import DetectionAP
    from refsw.encoder import pad_picture
    from refsw.encoder.track2 import inner
    from refsw.decoder.track2 import inner as dec_inner
    from refsw.picture import Picture
    pics = _people(9)
    qp = 32
    out, log = _code(pics, "--QP", str(qp))
    assert any("background simplified in 0 of 9 pictures" in line for line in log), log
    st = inner.Structure(intra_period=32, gop_size=16, qp=qp)
    s = inner.encode(inner.HEVC, [p.planes for p in pics], 384, 288, 8, 8, st)
    anchor = [Picture(list(pl), "420", 8) for pl in dec_inner.decode(inner.HEVC, s.data, 384, 288, 8, len(pics))]
    metric = DetectionAP(get_task_network("hog", upscale=2), gt_score=1.0)
    item = {"name": "vtest_b"}
    ap_refsw = metric.evaluate(item, pics, out)["AP50"]
    ap_anchor = metric.evaluate(item, pics, anchor)["AP50"]
    assert metric.ground_truth(item, pics) and ap_anchor > 0.3
    assert ap_refsw >= ap_anchor - 0.15, (ap_refsw, ap_anchor)
