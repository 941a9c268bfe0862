"""The specification text (docs/spec) against the code: an implementer who
has only the text gets the numbers, tables and rules the decoder uses
(issue #28, "Defects in the text")."""
import os
import re

import numpy as np
import pytest

from syntax.render import parse_array

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "docs", "spec")


def _page(name):
    with open(os.path.join(SPEC, name), encoding="utf-8") as f:
        return f.read()


def _clause(text, head, stop=r"\n#{2,3} "):
    """The text of the clause whose heading starts with ``head`` up to the next heading."""
    i = text.index(head)
    m = re.compile(stop).search(text, i + len(head))
    return text[i:m.start() if m else len(text)]


# ---------------------------------------------------------------------------
# T2.3: the filter tables and the phase derivation are in the text
# ---------------------------------------------------------------------------

def test_t23_filter_tables_are_those_of_the_decoder():
    from refsw.decoder.track2 import spatial
    t23 = _clause(_page("track2.md"), "## T2.3")
    assert parse_array(t23, "fL") == spatial.LUMA_FILTER.tolist()
    assert parse_array(t23, "fC") == spatial.CHROMA_FILTER.tolist()


def _t23_from_the_text(s, dst_w, dst_h, bit_depth, f):
    """T2.3 as written: phases, clipped indices, exact sums, ( v + 2048 ) >> 12."""
    P, N = len(f), len(f[0])
    log2p = P.bit_length() - 1

    def phases(src, dst):
        out = []
        for i in range(dst):
            pos = ((2 * i + 1) * src * P - dst * P + dst) // (2 * dst)     # Floor( · ÷ · )
            x_int = pos >> log2p
            out.append((x_int, pos - (x_int << log2p)))
        return out

    src_h, src_w = len(s), len(s[0])
    clip = lambda lo, hi, x: min(max(x, lo), hi)   # noqa: E731
    xs, ys = phases(src_w, dst_w), phases(src_h, dst_h)
    t = [[sum(f[fr][k] * s[y][clip(0, src_w - 1, xi + k - N // 2 + 1)] for k in range(N)) for xi, fr in xs]
         for y in range(src_h)]
    return [[clip(0, (1 << bit_depth) - 1,
                  (sum(f[fr][k] * t[clip(0, src_h - 1, yi + k - N // 2 + 1)][i] for k in range(N)) + 2048) >> 12)
             for i in range(dst_w)] for yi, fr in ys]


@pytest.mark.parametrize("src,dst,bit_depth,chroma", [
    ((4, 3), (8, 6), 8, False), ((10, 6), (13, 7), 10, False), ((5, 4), (9, 11), 8, True),
    ((6, 6), (6, 6), 12, True), ((2, 2), (15, 3), 16, False)])
def test_t23_text_process_equals_the_decoder(src, dst, bit_depth, chroma):
    """The process of T2.3, implemented from the text alone (with the tables read from
    the page), gives the decoder's samples, at ratios 2, 1.3, 1.8, 1, 7.5 and odd sizes."""
    from refsw.decoder.track2 import spatial
    t23 = _clause(_page("track2.md"), "## T2.3")
    f = parse_array(t23, "fC" if chroma else "fL")
    rng = np.random.default_rng(sum(src) + sum(dst))
    plane = rng.integers(0, 1 << bit_depth, (src[1], src[0]))
    plane[:, : src[0] // 2] = (1 << bit_depth) - 1            # an edge: overshoot is clipped
    want = spatial.upsample_plane(plane.astype(np.uint16), dst[0], dst[1], bit_depth, chroma)
    got = _t23_from_the_text(plane.tolist(), dst[0], dst[1], bit_depth, f)
    assert got == want.tolist()


def test_t23_phase_example_of_the_text():
    from refsw.decoder.track2 import spatial
    t23 = _clause(_page("track2.md"), "## T2.3")
    pos = [int(v.replace("−", "-")) for v in re.search(r"P = 16: pos = ([−\d, ]+);", t23).group(1).split(",")]
    idx, ph = spatial.ref_positions(4, 8, 16)
    assert pos == (idx * 16 + ph).tolist()


# ---------------------------------------------------------------------------
# 5.4, Table 6-2, 8.1, 8.2, 8.6: pictures without the LATENT units of upper layers
# ---------------------------------------------------------------------------

def _stream(name):
    from refsw.conformance import suite_dir
    with open(os.path.join(suite_dir(), "streams", name + ".bin"), "rb") as f:
        return f.read()


def _raw(data, u):
    return data[u.offset:u.offset + 4 + u.size]


def test_extracted_base_layer_stream_has_its_target_layer_in_the_manifest():
    """The manifest gives the extracted base-layer stream its target layer (8.1), and it
    decodes to the same hashes, checked against the layer-0 DPH, with and without it."""
    import json
    from refsw.conformance import load_manifest, suite_dir
    from refsw.decoder import Decoder
    from syntax.units import parse_units
    m = load_manifest(os.path.join(suite_dir(), "manifest.json"))
    s = next(s for s in m["streams"] if s["name"] == "learned_base_layer_70x45")
    assert s["target_layer"] == 0
    schema = json.load(open(os.path.join(suite_dir(), "manifest.schema.json"), encoding="utf-8"))
    assert "target_layer" in schema["properties"]["streams"]["items"]["properties"]
    data = _stream("learned_base_layer_70x45")
    units = parse_units(data)
    assert units[0].payload.sps_num_latent_layers_minus1 == 1          # the SPS still signals two layers
    assert [u.unit_layer_id for u in units if u.type_name == "LATENT"] == [0]
    for lt in (None, 0, 1):
        out = Decoder(max_layer=lt).decode(data)
        assert [(d.hash_status, d.hash_layer) for d in out] == [("match", 0)]


def test_a_picture_may_lack_the_latent_units_of_the_upper_layers():
    """Table 6-2 / 8.2: picture 1 has layer 0 only, picture 0 both layers; each is
    checked against the DPH of its HighestLayer (8.6) and picture 1 equals the
    base-layer decoding of the full picture (channels of layer 1: the mean, 10.4)."""
    from refsw.decoder import Decoder
    from syntax import hls
    from syntax.errors import BitstreamError
    from syntax.rw import Struct
    from syntax.units import BitstreamWriter, parse_units
    data = _stream("learned_q36_70x45")
    u = parse_units(data)
    assert [x.type_name + str(x.unit_layer_id) for x in u] == \
        ["SPS0", "PH0", "HYPER0", "LATENT0", "LATENT1", "DPH0", "DPH1", "EOS0"]
    sps, ph, hyp, lat0, lat1, dph0, dph1, eos = u
    w = BitstreamWriter()
    w.sps = sps.payload
    ph1 = w.write_unit(hls.UT_PH, Struct(**{**vars(ph.payload), "ph_pic_order_cnt": 1}))

    def stream(*pic1):
        return b"".join([_raw(data, x) for x in (sps, ph, hyp, lat0, lat1, dph0, dph1)] + [ph1]
                        + [_raw(data, x) for x in (hyp, *pic1, eos)])

    full = Decoder().decode(data)[0].picture
    base = Decoder(max_layer=0).decode(data)[0].picture
    assert full != base
    out = Decoder().decode(stream(lat0, dph0, dph1))
    assert [(d.hash_status, d.hash_layer) for d in out] == [("match", 1), ("match", 0)]
    assert out[0].picture == full and out[1].picture == base
    # only a DPH of a layer the picture lacks: no hash (not an error)
    out = Decoder().decode(stream(lat0, dph1))
    assert [(d.hash_status, d.hash_layer) for d in out] == [("match", 1), ("absent", None)]
    # a target layer above the picture's HighestLayer changes nothing
    out = Decoder(max_layer=1).decode(stream(lat0, dph0))
    assert [(d.hash_status, d.hash_layer) for d in out] == [("match", 1), ("match", 0)]
    # layer 1 without layer 0 is an error of 8.2
    with pytest.raises(BitstreamError) as e:
        Decoder().decode(stream(lat1, dph1))
    assert e.value.element == "unit_layer_id" and e.value.clause == "8.2"


def test_spec_text_allows_pictures_without_upper_layers():
    """The defect of #28: Table 6-2 required the LATENT units of every layer of the SPS,
    while 5.4 calls an extracted base layer conforming and 8.6 named no DPH."""
    t62 = _clause(_page("06-parameter-sets.md"), "## 6.2")
    row = next(ln for ln in t62.splitlines() if ln.startswith("| 1 | LEARNED"))
    assert "0..L for some L in 0..sps_num_latent_layers_minus1" in row
    d8 = _page("08-decoding.md")
    assert "**HighestLayer**" in _clause(d8, "## 8.1")
    assert "equals HighestLayer of the picture" in _clause(d8, "## 8.6")
    assert "HighestLayer" in _clause(_page("05-units.md"), "## 5.4")


# ---------------------------------------------------------------------------
# 10.6: the model data layout and the SHA-256 of every registered file
# ---------------------------------------------------------------------------

def test_model_data_hashes_in_the_text_are_the_registered_ones():
    """Table 10-1 lists the SHA-256 of every model's and task branch's integer data,
    as the registry (refsw/decoder/model_data.py) and the files on disk have them."""
    from refsw.decoder.model_data import MODEL_DATA, TASK_BRANCH_DATA
    from refsw.filehash import file_sha256
    text = _clause(_page("10-learned-intra.md"), "## 10.6")
    got = {k: sha for k, (_, sha) in _table_10_1(text).items()}
    want = {(e.model_id, None): e.int_sha256 for e in MODEL_DATA.values()}
    want.update({(e.model_id, e.branch_id): e.int_sha256 for e in TASK_BRANCH_DATA.values()})
    assert got == want, ("Table 10-1 (docs/spec/10-learned-intra.md, clause 10.6) differs from the registry; "
                         "run: python -m refsw.models.record_hashes")
    for e in list(MODEL_DATA.values()) + list(TASK_BRANCH_DATA.values()):
        assert file_sha256(e.int_path) == got[(e.model_id, getattr(e, "branch_id", None))], e.int_file


def _table_10_1(text):
    """{(model id, branch id or None): (file, sha256)}, read from the markdown rows."""
    out = {}
    for ln in text.splitlines():
        m = re.match(r"\| (\d+) \| (\d+|–) \| \w+ \| `([\w.]+)` \| `([0-9a-f]{64})` \|$", ln)
        if m:
            out[(int(m[1]), None if m[2] == "–" else int(m[2]))] = (m[3], m[4])
    return out


def test_record_hashes_rewrites_table_10_1(tmp_path, monkeypatch):
    from refsw.decoder import model_data as md
    from refsw.models import record_hashes as rh
    page = _page("10-learned-intra.md")
    stale = page
    for e in list(md.MODEL_DATA.values()) + list(md.TASK_BRANCH_DATA.values()):
        stale = stale.replace(e.int_sha256, "f" * 64)
    assert stale != page
    p = tmp_path / "10.md"
    p.write_text(stale, encoding="utf-8")
    assert rh.write_spec(str(p)) and p.read_text(encoding="utf-8") == page
    assert not rh.write_spec(str(p))
    # a newly registered model gets its row; the hashes just recorded override the registry's
    monkeypatch.setitem(md.MODEL_DATA, 9, md.ModelData(9, "intra_v9", "intra_v9_int.npz", int_sha256="a" * 64))
    rh.write_spec(str(p), hashes={"intra_v1_int.npz": "b" * 64})
    t = _table_10_1(p.read_text(encoding="utf-8"))
    assert t[(9, None)] == ("intra_v9_int.npz", "a" * 64) and t[(1, None)][1] == "b" * 64
    assert t == {k: v for k, v in rh.spec_hashes(p.read_text(encoding="utf-8")).items()}


def test_model_data_dtypes_in_the_text_are_those_of_the_file():
    """10.6 says what the file stores: every array of the model data has a row whose
    dtype is the file's (the z.* tables are int64, not the int32/uint32 of 9.3.4)."""
    import numpy as np
    from refsw.decoder.model_data import MODEL_DATA
    text = _clause(_page("10-learned-intra.md"), "## 10.6")
    rows = []
    for ln in text.splitlines():
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            pats = [re.escape(n).replace(re.escape("<i>"), r"\d+") for n in re.findall(r"`([\w.<>]+)`", cells[0])]
            rows.append((re.compile("|".join(f"(?:{p})" for p in pats) + "$"), set(re.findall(r"\w+\d+", cells[1]))))
    assert rows
    for e in MODEL_DATA.values():
        with np.load(e.int_path) as z:
            for name in z.files:
                if name.startswith("ctx."):
                    continue   # 10.9
                row = [dt for pat, dt in rows if pat.match(name)]
                assert row, f"{name} of {e.int_file} is not described in 10.6"
                assert str(z[name].dtype) in row[0], (name, z[name].dtype, row[0])
