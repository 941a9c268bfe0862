"""Task-branch decoding (10.8) with small random models: exactness, the
detection-output process, extraction and errors."""
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from refsw.apps.extract import extract
from refsw.cfg import parse
from refsw.conformance import suite_dir
from refsw.decoder import Decoder
from refsw.encoder import Encoder, EncoderError
from refsw.models import registry
from refsw.models.task_face import FaceHead, make_targets
from refsw.models.task_io import save_branch
from refsw.nn import convert
from refsw.options import ENCODER_OPTIONS
from refsw.threads import set_threads
from syntax import hls
from syntax.errors import BitstreamError
from syntax.rw import Struct
import refsw.decoder.task_branch as tb
from refsw.decoder import model_data
from conftest import random_codec, synthetic_rgb


@pytest.fixture(scope="module")
def random_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    with random_codec(d) as codec_int:
        torch.manual_seed(0)
        head = FaceHead()
        with torch.no_grad():
            head.t_s[-1].bias[0] = 2.0          # many candidates: exercises ordering and NMS
        save_branch(head, str(d / "b.npz"))
        np.savez(d / "b_int.npz", **convert.integerize_branch(head, str(codec_int)))
        old = model_data.TASK_BRANCH_DATA[(1, 1)]
        model_data.TASK_BRANCH_DATA[(1, 1)] = replace(old, int_file=str(d / "b_int.npz"), int_sha256=None)
        tb.int_branch.cache_clear()
        yield
        model_data.TASK_BRANCH_DATA[(1, 1)] = old
        tb.int_branch.cache_clear()


def _pic(w=130, h=67, seed=1):
    return synthetic_rgb(w, h, seed)


def _encode(pic, *args):
    c, _ = parse(["--CodingMode", "learned", *args], ENCODER_OPTIONS)
    return Encoder(c).encode([pic])


def _dets(data, **kw):
    return [d.task.detections for d in Decoder(task="face", **kw).decode(data)]


def test_paths_threads_and_extraction_agree(random_models):
    data = _encode(_pic(), "-q", "40")
    ref = _dets(data)
    assert ref[0], "the biased random head should give detections"
    assert _dets(data, reference=True) == ref            # int64 reference path
    set_threads(1)
    one = _dets(data)
    set_threads(2)
    assert _dets(data) == one == ref
    base, _, dropped = extract(data, 0)
    assert dropped == 2 and len(base) < len(data)
    assert _dets(base) == ref                              # the branch reads the base layer only


def test_detection_output_properties(random_models):
    data = _encode(_pic(), "-q", "10")
    out = Decoder(task="face").decode(data)[0].task
    br = tb.int_branch(1, "face")
    assert (out.width, out.height) == (130, 67)
    assert len(out.detections) <= br.max_det
    v0 = [d[4] for d in out.detections]
    assert v0 == sorted(v0, reverse=True) and min(v0) >= br.score_min
    for i, a in enumerate(out.detections):
        assert 0 <= a[0] < a[2] <= 256 * 130 and 0 <= a[1] < a[3] <= 256 * 67
        for b in out.detections[:i]:
            iw = min(a[2], b[2]) - max(a[0], b[0])
            ih = min(a[3], b[3]) - max(a[1], b[1])
            inter = max(iw, 0) * max(ih, 0)
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            assert 2 * inter <= union
    j = out.to_json(0)
    assert j["detections"][0]["box"] == [c / 256 for c in out.detections[0][:4]]
    assert out.canonical().count(b"\n") == len(out.detections)


def test_detection_formula_worked_example():
    """10.8.2 on a hand-made 1x2 map (S = 16, no window offsets)."""
    br = Struct(stride=16, score_min=-1024, max_det=100, nms_num=1, nms_den=2)
    sps = Struct(sps_conf_win_left_offset=0, sps_conf_win_top_offset=0, sps_conf_win_right_offset=0,
                 sps_conf_win_bottom_offset=0, sps_pic_width_in_luma_samples=32, sps_pic_height_in_luma_samples=16)
    v = np.zeros((5, 1, 2), dtype=np.int64)
    v[:, 0, 0] = [512, 0, 0, 256, 256]        # one-cell box centred on cell (0, 0)
    v[:, 0, 1] = [600, -256, 0, 256, 256]     # same box from cell (0, 1): higher score, wins NMS
    got = tb.detections(v, br, sps)
    # cx = 256*16*1 + 128*16 + 16*(-256) = 2048; w = 4096: x0 = 0, x1 = 4096
    assert got == [(0, 0, 4096, 4096, 600)]
    v[0, 0, 1] = -2000                        # below ScoreMin: the other box stays
    assert tb.detections(v, br, sps) == [(0, 0, 4096, 4096, 512)]


def test_errors(random_models, tmp_path):
    pic = _pic()
    none = _encode(pic, "-q", "20", "--TaskBranches", "none")
    with pytest.raises(BitstreamError, match="sps_task_branch_id"):
        _dets(none)
    with pytest.raises(ValueError, match="no task branch 'eyes'"):
        Decoder(task="eyes").decode(_encode(pic, "-q", "20"))
    with pytest.raises(EncoderError, match="TaskBranches"):
        _encode(pic, "--TaskBranches", "eyes")
    # a conforming stream of other pictures: the branch cannot run (not a bitstream error)
    c, _ = parse(["--CodingMode", "pcm"], ENCODER_OPTIONS)
    with pytest.raises(ValueError, match="learned pictures only"):
        _dets(Encoder(c).encode([pic]))
    # sequence-level coding modes (inner codec) are refused before their decoding runs
    with open(os.path.join(suite_dir(), "streams", "inner_hevc_ra_none.bin"), "rb") as f:
        with pytest.raises(ValueError, match="learned pictures only"):
            _dets(f.read())


def _with_sps(data, **fields):
    from syntax.units import BitstreamWriter, parse_units
    units = parse_units(data)
    sps = units[0].payload
    for k, v in fields.items():
        setattr(sps, k, v)
    w = BitstreamWriter()
    w.write_unit(hls.UT_SPS, sps)
    return w.getvalue() + data[units[1].offset:]


def test_branch_layers_other_than_registered_are_bitstream_errors(random_models):
    """10.8: the SPS gives the face branch the layers of Table 10-2 (one layer of 48
    channels); any other split is named, not run into a shape error."""
    data = _encode(_pic(), "-q", "20")
    two = _with_sps(data, sps_task_branch_num_layers_minus1=[1])
    with pytest.raises(BitstreamError, match="reads 1 latent layer") as e:
        _dets(two)
    assert e.value.element == "sps_task_branch_num_layers_minus1"
    from syntax.units import parse_units
    units = parse_units(data)
    one = _with_sps(data, sps_num_latent_layers_minus1=0)      # layer 0 = all 160 channels
    keep = [u for u in parse_units(one) if u.unit_layer_id == 0]
    one = b"".join(one[u.offset:u.offset + 4 + u.size] for u in keep)
    with pytest.raises(BitstreamError, match="channels \\[0, 160\\)"):
        _dets(one)
    assert len(units) == len(keep) + 2


def test_branch_of_another_codec_conversion_refused(random_models, tmp_path):
    """Integer branch data converted against another codec calibration is named, not used."""
    from refsw.decoder.learned_intra import int_model
    br = tb.int_branch(1, "face")
    z = dict(np.load(br.entry.int_path, allow_pickle=False))
    br.check_codec(int_model(1))                               # the matching pair passes
    z["meta.codec_calibration"] = z["meta.codec_calibration"] * 1.01
    np.savez(tmp_path / "stale_int.npz", **z)
    stale = tb.IntBranch(str(tmp_path / "stale_int.npz"), br.entry)
    with pytest.raises(ValueError, match="converted for another codec calibration.*--branch face"):
        stale.check_codec(int_model(1))
    del z["meta.codec_calibration"]
    np.savez(tmp_path / "old_int.npz", **z)
    with pytest.raises(ValueError, match="another codec calibration"):
        tb.IntBranch(str(tmp_path / "old_int.npz"), br.entry).check_codec(int_model(1))


def test_sps_branch_layers_bounded(random_models):
    from syntax.units import BitstreamWriter
    data = _encode(_pic(), "-q", "5")
    w = BitstreamWriter()
    s = Struct(**_sps_of(data))
    assert s.sps_num_task_branches == 1 and s.sps_task_branch_id == [1]
    s.sps_task_branch_num_layers_minus1 = [2]        # the stream has 2 latent layers
    with pytest.raises(BitstreamError, match="sps_task_branch_num_layers_minus1"):
        w.write_unit(hls.UT_SPS, s)


def _sps_of(data):
    from syntax.units import parse_units
    return dict(vars(parse_units(data)[0].payload))


def test_targets_centre_cells():
    # centre (32, 40) -> cell (i, j) = (2, 2), offset (-0.5, 0) cells, size 2 x 3 cells
    heat, reg, mask = make_targets([[(16.0, 16.0, 48.0, 64.0)]], 4, 4)
    assert mask.sum() == 1 and mask[0, 0, 2, 2] == 1 and heat[0, 0, 2, 2] == 1
    assert torch.allclose(reg[0, :, 2, 2], torch.tensor([-0.5, 0.0, 2.0, 3.0]))


def test_branch_weights_round_trip_and_wrong_file(tmp_path):
    """save_branch/load_branch round-trip; a file of another model is named, not a TypeError."""
    from refsw.models.registry import get_entry
    from refsw.models.task_face import FaceHead, FaceHeadConfig
    from refsw.models.task_io import load_branch, save_branch
    head = FaceHead(FaceHeadConfig(channels=8, depth=1))
    save_branch(head, str(tmp_path / "b.npz"))
    back = load_branch(str(tmp_path / "b.npz"))
    assert back.cfg == head.cfg
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), back.state_dict().values()))
    with pytest.raises(ValueError, match="face branch config: unknown keys .*base_channels"):
        load_branch(get_entry(1).weights_path)
