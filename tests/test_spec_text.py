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


# ---------------------------------------------------------------------------
# Smaller points: 4.3, 5.1, 5.2, T2.2, ph_pic_type of INNER pictures
# ---------------------------------------------------------------------------

def test_every_name_in_a_range_column_is_defined_in_the_text():
    """5.1 used UNIT_HEADER_BYTES and max_unit_bytes without defining them.  A name in
    the Range column of a rendered syntax table is a syntax element, a loop variable,
    or defined in the prose ("Name = ...") or as the head of a table column (Annex A)."""
    pages = {os.path.basename(p): _page(p) for p in sorted(os.listdir(SPEC)) if p.endswith(".md")}
    blocks = re.compile(r"<!-- syntax: \w+ -->\n(.*?)<!-- /syntax -->", re.S)
    elements, used = set(), {}
    for name, text in pages.items():
        for b in blocks.findall(text):
            for ln in b.splitlines():
                cells = [c.strip() for c in ln.strip().strip("|").split("|")]
                if len(cells) == 3 and cells[1] and cells[1] != "Descriptor" and not cells[1].startswith("-"):
                    elements.add(re.sub(r"&emsp;|\[.*", "", cells[0]).strip())
                if len(cells) == 3 and cells[2] != "Range":
                    for tok in re.findall(r"[A-Za-z_]\w*", cells[2]):
                        used.setdefault(tok, name)
    prose = "\n".join(blocks.sub("", t) for t in pages.values())
    heads = {c.strip() for ln, nxt in zip(prose.splitlines(), prose.splitlines()[1:]) if nxt.startswith("|---")
             for c in ln.strip().strip("|").split("|")}
    undefined = [f"{tok} ({page})" for tok, page in sorted(used.items())
                 if tok not in elements and len(tok) > 1 and tok not in heads
                 and not re.search(r"(?<![\w.])`?" + re.escape(tok) + r"`?\s*=(?!=)", prose)]
    assert not undefined, undefined


def test_unit_length_bounds_of_5_1():
    """UNIT_HEADER_BYTES = 2 and max_unit_bytes (MaxUnitBytes of the last SPS, 65536
    before it) as the text defines them; reserved units included."""
    from syntax import units
    from syntax.errors import BitstreamError
    from syntax.levels import MAX_UNIT_BYTES_NO_SPS, LEVELS
    from syntax.units import parse_units
    t51 = _clause(_page("05-units.md"), "## 5.1")
    assert f"UNIT_HEADER_BYTES = {units.UNIT_HEADER_BYTES}," in t51 and "or 65536 when" in t51
    assert MAX_UNIT_BYTES_NO_SPS == 65536
    data = _stream("pcm_rgb444_8bit_13x7")
    sps_end = parse_units(data)[1].offset
    for length, ok in ((1, False), (2, True)):
        d = data[:sps_end] + length.to_bytes(4, "big") + _header(40, 0, 0)[:length] + data[sps_end:]
        if ok:
            assert len(parse_units(d)) == len(parse_units(data)) + 1
        else:
            with pytest.raises(BitstreamError) as e:
                parse_units(d)
            assert (e.value.element, e.value.clause) == ("unit_length", "5.1")
    level = LEVELS[parse_units(data)[0].payload.sps_level_idc].MaxUnitBytes
    big = level + 1 - 2
    d = data[:sps_end] + (level + 1).to_bytes(4, "big") + _header(40, 0, 0) + bytes(big) + data[sps_end:]
    with pytest.raises(BitstreamError, match="out of range") as e:
        parse_units(d)
    assert (e.value.element, e.value.clause) == ("unit_length", "5.1")


def _header(unit_type, layer_id, temporal_id, forbidden=0):
    v = (forbidden << 15) | (unit_type << 9) | (layer_id << 3) | (temporal_id + 1)
    return v.to_bytes(2, "big")


def _unit(unit_type, layer_id, temporal_id, payload=b"reserved", forbidden=0):
    body = _header(unit_type, layer_id, temporal_id, forbidden) + payload
    return len(body).to_bytes(4, "big") + body


def test_reserved_units_get_the_checks_5_2_names_and_no_other():
    """5.2: a unit of a reserved or unspecified type is checked for its length and its
    header syntax, and may not be first; not for the layer id or temporal id its
    position would require, and it neither belongs to nor ends a picture."""
    from refsw.decoder import Decoder
    from syntax.errors import BitstreamError
    from syntax.units import parse_units
    t52 = _clause(_page("05-units.md"), "## 5.2")
    assert "skipped unchecked" not in t52 and "`unit_layer_id` in 0..62" in t52
    data = _stream("pcm_rgb444_8bit_13x7")
    u = parse_units(data)
    assert [x.type_name for x in u] == ["SPS", "PH", "PCM", "DPH", "EOS"]
    raw = [data[x.offset:x.offset + 4 + x.size] for x in u]
    # anywhere after the first unit, any layer id 0..62 and temporal id 0..6: skipped
    odd = [_unit(40, 62, 6), _unit(11, 5, 3), _unit(63, 1, 0, b"")]
    d = b"".join([raw[0], odd[0], raw[1], odd[1], raw[2], odd[2], raw[3], odd[0], raw[4]])
    out = Decoder().decode(d)
    assert [(p.hash_status, p.hash_layer) for p in out] == [("match", 0)]
    # the header syntax is checked: layer id 63, forbidden_zero_bit 1, temporal id plus1 0
    for bad, element in ((_unit(40, 63, 0), "unit_layer_id"), (_unit(40, 0, 0, forbidden=1), "forbidden_zero_bit"),
                         (_unit(40, 0, -1), "unit_temporal_id_plus1")):
        with pytest.raises(BitstreamError) as e:
            Decoder().decode(b"".join([raw[0], raw[1], bad, *raw[2:]]))
        assert (e.value.element, e.value.clause) == (element, "5.2")
    # and it is not the first unit
    with pytest.raises(BitstreamError) as e:
        Decoder().decode(_unit(50, 0, 0) + data)
    assert (e.value.element, e.value.clause) == ("unit_type", "5.3")


def test_exp_golomb_limit_is_a_shall_of_4_3():
    """4.3 states the shall; the error and the manifest cite 4.3 (the manifest said 6.1)."""
    from refsw.conformance import load_manifest, suite_dir
    from refsw.decoder import Decoder
    from refsw.decoder.entropy import container
    from syntax.errors import BitstreamError
    assert "shall not have more than 32 leading zero bits" in _clause(_page("04-conventions.md"), "## 4.3")
    m = load_manifest(os.path.join(suite_dir(), "manifest.json"))
    neg = next(s for s in m["negative"] if s["name"] == "neg_exp_golomb_too_long")
    assert neg["clause"] == "4.3"
    with open(os.path.join(suite_dir(), neg["file"]), "rb") as f:
        data = f.read()
    with pytest.raises(BitstreamError) as e:
        Decoder().decode(data)
    assert (e.value.element, e.value.clause) == ("sps_pic_width_in_luma_samples", "4.3")
    assert "shall not have more than 32 leading zero bits" in str(e.value)
    # a stand-alone entropy substream header (9.6): the same rule, the same clause
    with pytest.raises(BitstreamError) as e:
        container.read(bytes(5) + b"\x80")
    assert (e.value.element, e.value.clause) == ("es_num_lanes_minus1", "4.3")
    # 32 leading zero bits are fine: the largest ue(v) value, 2^33 - 2
    from syntax.rw import SyntaxReader, Struct
    r = SyntaxReader(bytes(4) + b"\xff" * 5)
    r._push("t", Struct(), "x")
    assert r.ue("v") == (1 << 33) - 2


def _inner_units():
    from syntax.units import parse_units
    data = _stream("inner_hevc_ra_none")
    return data, parse_units(data)


def test_inner_bitstream_with_more_pictures_than_coded_pictures_is_an_error():
    """T2.2: the inner bitstream decodes to exactly NumCodedPics pictures; more is an
    error, not ignored.  The last picture header is removed, its INNER unit kept (moved
    into the previous picture, so the inner bitstream is unchanged): 6 inner pictures
    for 5 coded pictures."""
    from refsw.decoder import Decoder
    from syntax.errors import BitstreamError
    data, u = _inner_units()
    raw = [data[x.offset:x.offset + 4 + x.size] for x in u]
    names = [x.type_name for x in u]
    last_ph = max(i for i, n in enumerate(names) if n == "PH")
    assert names[last_ph:] == ["PH", "INNER", "DPH", "EOS"] and names[last_ph - 1] == "DPH"
    assert len(Decoder().decode(data)) == 6
    bad = b"".join(raw[:last_ph - 1] + [raw[last_ph + 1], raw[last_ph - 1], raw[-1]])
    with pytest.raises(BitstreamError, match="decodes to more than 5 pictures") as e:
        Decoder().decode(bad)
    assert e.value.clause == "T2.2"


def test_ph_pic_type_of_inner_pictures_constrains_nothing():
    """5.2 / 6.2 / T2.2: an INNER picture with ph_pic_type 0 (I) may have a temporal id
    other than 0 (its ph_pic_type is informative); the PH of a PCM picture may not."""
    from refsw.decoder import Decoder
    from syntax.errors import BitstreamError
    from syntax.units import parse_units, rewrite_unit
    data, u = _inner_units()
    names = [x.type_name for x in u]
    first = names.index("PH")
    assert u[first].payload.ph_pic_type == 0 and names[first:first + 3] == ["PH", "INNER", "DPH"]
    want = [d.picture for d in Decoder().decode(data)]
    d = data
    for k in (first + 2, first + 1, first):             # back to front: offsets stay valid
        d = rewrite_unit(d, parse_units(d)[k], temporal_id=1)
    out = Decoder().decode(d)
    assert [p.picture for p in out] == want and {p.hash_status for p in out} == {"match"}
    pcm = _stream("pcm_rgb444_8bit_13x7")
    pu = parse_units(pcm)
    for k in (3, 2, 1):
        pcm = rewrite_unit(pcm, parse_units(pcm)[k], temporal_id=1)
    with pytest.raises(BitstreamError, match="not an INNER picture shall be 0") as e:
        Decoder().decode(pcm)
    assert (e.value.element, e.value.clause) == ("unit_temporal_id_plus1", "5.2")
    assert pu[1].payload.ph_pic_type == 0
