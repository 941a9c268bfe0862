"""Decoded picture hash (7.8, 8.6): the CRC-32 hash type (#30) and the hash of
the decoded latent checked in task mode (#28)."""
import os
import re
import zlib

import numpy as np
import pytest

from refsw.cfg import parse
from refsw.decoder import Decoder
from refsw.encoder import Encoder
from refsw.options import ENCODER_OPTIONS
from refsw.picture import Picture, plane_crc32, plane_hash_bytes
from syntax import hls
from syntax.units import parse_units

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "docs", "spec")


def _page(name):
    with open(os.path.join(SPEC, name), encoding="utf-8") as f:
        return f.read()


def _clause(text, head, stop=r"\n#{2,3} "):
    i = text.index(head)
    m = re.compile(stop).search(text, i + len(head))
    return text[i:m.start() if m else len(text)]


def _pcm_pics(n=2, chroma_format="420", bit_depth=8, w=13, h=7):
    rng = np.random.default_rng(5)
    shapes = {"420": [(h, w), ((h + 1) // 2, (w + 1) // 2)] + [((h + 1) // 2, (w + 1) // 2)],
              "444": [(h, w)] * 3, "400": [(h, w)]}[chroma_format]
    return [Picture([rng.integers(0, 1 << bit_depth, s).astype(np.uint16) for s in shapes], chroma_format,
                    bit_depth, "ycbcr") for _ in range(n)]


def _encode(pics, *args, mode="pcm"):
    c, _ = parse(["--CodingMode", mode, *args], ENCODER_OPTIONS)
    return Encoder(c).encode(pics)


def _dph_units(data):
    return [u for u in parse_units(data) if u.unit_type == hls.UT_DPH]


# ---------------------------------------------------------------------------
# A. CRC-32 (dph_hash_type 1)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("chroma_format,bit_depth", [("420", 8), ("444", 10), ("400", 16)])
def test_crc_hash_round_trip(chroma_format, bit_depth):
    """PictureHash 2 writes dph_hash_type 1 with one u(32) CRC per component, the CRC-32 of
    the bytes MD5 hashes (1 byte per sample at 8 bits, 2 little-endian above); the decoder
    checks it and reports the hash type."""
    pics = _pcm_pics(2, chroma_format, bit_depth)
    data = _encode(pics, "--PictureHash", "2")
    dphs = _dph_units(data)
    assert len(dphs) == 2
    for u, pic in zip(dphs, pics):
        assert u.payload.dph_hash_type == hls.DPH_CRC32 and not hasattr(u.payload, "dph_picture_md5")
        assert u.payload.dph_picture_crc == [zlib.crc32(plane_hash_bytes(p, bit_depth)) for p in pic.planes]
        assert len(u.raw) == 1 + 4 * len(pic.planes) + 1       # type, CRCs, trailing bits
    out = Decoder().decode(data)
    assert [(d.hash_status, d.hash_type) for d in out] == [("match", hls.DPH_CRC32)] * 2
    assert [d.picture for d in out] == pics


def test_crc_hash_reports_a_corrupted_sample(tmp_path, capsys):
    """One PCM sample changed: the CRC check reports a mismatch naming the component with
    the expected and the computed CRC (8 hex digits); refsw-decode exits with status 4."""
    pics = _pcm_pics(1, "420", 8)
    data = bytearray(_encode(pics, "--PictureHash", "2"))
    pcm = next(u for u in parse_units(bytes(data)) if u.unit_type == hls.UT_PCM)
    # the first Cb sample: after the 13x7 luma samples of the payload
    pos = pcm.offset + 6 + 13 * 7
    data[pos] ^= 0x01
    out = Decoder().decode(bytes(data))
    assert out[0].hash_status == "mismatch"
    want = pics[0].planes[1].copy()
    want[0, 0] ^= 1
    exp = f"{plane_crc32(pics[0].planes[1], 8):08x}"
    got = f"{plane_crc32(want, 8):08x}"
    assert out[0].hash_detail == f"component 1: expected {exp} got {got}"
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(data))
    from refsw.apps.decode import main
    with pytest.raises(SystemExit) as e:
        main(["-b", str(path)])
    assert e.value.code == 4
    cap = capsys.readouterr()
    assert "[CRC:MISMATCH]" in cap.out and exp in cap.err and got in cap.err
    path.write_bytes(_encode(pics, "--PictureHash", "2"))
    with pytest.raises(SystemExit) as e:
        main(["-b", str(path)])
    assert e.value.code == 0 and "[CRC:OK]" in capsys.readouterr().out


def _crc32_from_the_text(data: bytes) -> int:
    """CRC32( d ) of 7.8 as written: the constants are read from the text."""
    text = _clause(_page("07-payloads.md"), "## 7.8")
    code = text[text.index("CRC32( d ) {"):]
    code = code[:code.index("```")]
    init = int(re.search(r"crc = (0x[0-9A-F]+)", code).group(1), 16)
    poly = int(re.search(r"\^ (0x[0-9A-F]+) \)", code).group(1), 16)
    final = int(re.search(r"return crc \^ (0x[0-9A-F]+)", code).group(1), 16)
    assert "for( k = 0; k < 8; k++ )" in code and "( crc & 1 ) ?" in code
    crc = init
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc >> 1) ^ poly) if crc & 1 else (crc >> 1)
    return crc ^ final


def test_crc_definition_of_the_text_is_zlibs():
    """The CRC of 7.8, implemented from the text alone, is zlib.crc32 (ISO-HDLC) on the
    check value of the text and on the PictureData of a 10-bit plane."""
    text = _clause(_page("07-payloads.md"), "## 7.8")
    check = int(re.search(r'"123456789"\) is (0x[0-9A-F]+)', text).group(1), 16)
    assert check == 0xCBF43926 == zlib.crc32(b"123456789") == _crc32_from_the_text(b"123456789")
    assert _crc32_from_the_text(b"") == 0 == zlib.crc32(b"")
    plane = np.random.default_rng(2).integers(0, 1024, (9, 11)).astype(np.uint16)
    data = plane_hash_bytes(plane, 10)
    assert len(data) == 2 * plane.size and data[:2] == int(plane[0, 0]).to_bytes(2, "little")
    assert _crc32_from_the_text(data) == zlib.crc32(data) == plane_crc32(plane, 10)


def _dph_bytes_per_picture(data):
    dphs = _dph_units(data)
    return sum(4 + u.size for u in dphs) / len(dphs)


@pytest.mark.parametrize("chroma_format,md5,crc", [("420", 56, 20), ("400", 24, 12)])
def test_crc_hash_rate_saving(chroma_format, md5, crc):
    """A DPH unit (unit_length, header, payload) costs 56 bytes per 3-component picture with
    MD5 (PictureHash 1) and 20 with CRC-32 (PictureHash 2), as Table 7-1 says."""
    pics = _pcm_pics(3, chroma_format)
    assert _dph_bytes_per_picture(_encode(pics, "--PictureHash", "1")) == md5
    assert _dph_bytes_per_picture(_encode(pics, "--PictureHash", "2")) == crc
    table = _clause(_page("07-payloads.md"), "## 7.8")
    assert "| 0 | MD5 | `dph_picture_md5[ c ]`, 16 bytes | 56 bytes |" in table
    assert "| 1 | CRC-32 | `dph_picture_crc[ c ]`, u(32) | 20 bytes |" in table


def test_unknown_hash_type_is_an_error():
    data = bytearray(_encode(_pcm_pics(1), "--PictureHash", "2"))
    u = _dph_units(bytes(data))[0]
    data[u.offset + 6] = 2                        # dph_hash_type 2: reserved
    from syntax.errors import BitstreamError
    with pytest.raises(BitstreamError) as e:
        Decoder().decode(bytes(data))
    assert e.value.element == "dph_hash_type" and e.value.clause == "7.8"


# ---------------------------------------------------------------------------
# B. The hash of the decoded latent, checked in task mode
# ---------------------------------------------------------------------------

def _learned_pic(w=64, h=64):
    from refsw.content import default_image_path
    from refsw.picture import read_png
    src = read_png(default_image_path())
    return Picture([p[40:40 + h, 60:60 + w].copy() for p in src.planes], "444", 8, "rgb")


@pytest.fixture(scope="module")
def latent_streams():
    """A learned picture (model 1, two latent layers, face branch) with LatentHash 0 and 1,
    with MD5 and with CRC-32."""
    pic = _learned_pic()
    return {(ph, lh): _encode([pic], "-q", "20", "--PictureHash", ph, "--LatentHash", lh, mode="learned")
            for ph in ("1", "2") for lh in ("0", "1")}


def _latent_from_the_text(data, layer):
    """LatentData of 7.8 as written, from the decoder's y_hat of layers 0..layer alone."""
    import struct
    from refsw.decoder.learned_intra import decode_latents, int_model
    units = parse_units(data)
    sps = units[0].payload
    m = int_model(sps.sps_model_id)
    q = next(u.payload.ph_quality_idx for u in units if u.unit_type == hls.UT_PH)
    hyp = next(u for u in units if u.unit_type == hls.UT_HYPER)
    lats = [u for u in units if u.unit_type == hls.UT_LATENT and u.unit_layer_id <= layer]
    H, W = sps.sps_pic_height_in_luma_samples, sps.sps_pic_width_in_luma_samples
    y_hat = decode_latents(m, sps, hyp, lats, q, H, W)
    c_end = m.layer_channels(sps.sps_num_latent_layers_minus1 + 1)[layer + 1]
    out = bytearray()
    for c in range(c_end):
        for y in range(H // 16):
            for x in range(W // 16):
                out += struct.pack("<i", int(y_hat[0, c, y, x]))
    return bytes(out), c_end


def test_latent_hash_is_that_of_the_text(latent_streams):
    """LatentHash 1: every DPH unit of layer l of a learned picture carries the MD5 (or CRC-32)
    of y_hat of channels [0, C_(l+1)) decoded from layers 0..l, each value a 32-bit signed
    little-endian integer in raster order of (c, y, x) — 48 channels for layer 0, 160 for 1;
    the DPH unit grows by 16 (4) bytes; LatentHash 0 keeps the bytes of before."""
    import hashlib
    for ph in ("1", "2"):
        with_lh, without = latent_streams[(ph, "1")], latent_streams[(ph, "0")]
        dphs = _dph_units(with_lh)
        assert [u.unit_layer_id for u in dphs] == [0, 1]
        for u in dphs:
            data, c_end = _latent_from_the_text(with_lh, u.unit_layer_id)
            assert c_end == (48, 160)[u.unit_layer_id] and len(data) == 4 * c_end * 4 * 4
            if ph == "1":
                assert u.payload.dph_latent_md5 == hashlib.md5(data).digest()
            else:
                assert u.payload.dph_latent_crc == _crc32_from_the_text(data)
        assert [u.size for u in dphs] == [u.size + (16 if ph == "1" else 4) for u in _dph_units(without)]
        assert all(hls.dph_latent_hash(u.payload) is None for u in _dph_units(without))
        # only the DPH units differ
        strip = lambda d: b"".join(d[u.offset:u.offset + 4 + u.size] for u in parse_units(d)   # noqa: E731
                                   if u.unit_type != hls.UT_DPH)
        assert strip(with_lh) == strip(without)


def _tamper_latent(data, layer=0, delta=1):
    """A consistent stream whose LATENT unit of ``layer`` codes one symbol changed by ``delta``
    (re-entropy-coded against the decoder's own tables): every syntax and entropy check
    passes, the decoded latent differs (a buggy encoder, or an undetected transmission error)."""
    from refsw.decoder.entropy import RansSubstreams, decode_substreams, encode_substreams
    from refsw.decoder.learned_intra import int_model
    from refsw.encoder.core import entropy_substream
    units = parse_units(data)
    sps = units[0].payload
    m = int_model(sps.sps_model_id)
    q = next(u.payload.ph_quality_idx for u in units if u.unit_type == hls.UT_PH)
    hyp = next(u for u in units if u.unit_type == hls.UT_HYPER).payload
    lat = next(u for u in units if u.unit_type == hls.UT_LATENT and u.unit_layer_id == layer)
    H, W = sps.sps_pic_height_in_luma_samples, sps.sps_pic_width_in_luma_samples
    zi = np.broadcast_to(np.arange(m.Z).reshape(m.Z, 1, 1), (m.Z, H // 64, W // 64))
    z_hat = decode_substreams(RansSubstreams.from_syntax(hyp.hyp_substream), zi, m.z_tables).astype(np.int64)[None]
    _, k = m.entropy_params(m.hyper_acc(z_hat, q), q)
    c0, c1 = m.layer_channels(sps.sps_num_latent_layers_minus1 + 1)[layer:layer + 2]
    kk = k[0, c0:c1]
    s = decode_substreams(RansSubstreams.from_syntax(lat.payload.lat_substream), kk, m.y_tables).astype(np.int64)
    s[0, 0, 0] += delta
    payload = lat.payload
    payload.lat_substream = entropy_substream(encode_substreams(s, kk, m.y_tables))
    from syntax.units import rewrite_unit
    return rewrite_unit(data, lat, payload=payload)


def test_task_mode_reports_a_corrupted_latent(latent_streams, tmp_path, capsys):
    """#28: a corrupted but decodable entropy payload of the base layer changes the face
    branch's input.  Without a latent hash nothing notices (the old behaviour: exit 0); with
    LatentHash 1 the task decoder reports a latent hash mismatch of layer 0 and refsw-decode
    --Task exits with status 4, for MD5 and CRC-32."""
    from refsw.apps.decode import main
    good = Decoder(task="face").decode(latent_streams[("1", "1")])
    assert [(d.hash_status, d.hash_layer, d.hash_type) for d in good] == [("match", 0, hls.DPH_MD5)]
    silent = Decoder(task="face").decode(_tamper_latent(latent_streams[("1", "0")]))
    assert silent[0].hash_status == "absent"
    for ph, kind in (("1", "MD5"), ("2", "CRC")):
        bad = _tamper_latent(latent_streams[(ph, "1")])
        out = Decoder(task="face").decode(bad)
        assert out[0].hash_status == "mismatch" and out[0].hash_layer == 0
        assert out[0].hash_detail.startswith("latent of layers 0..0 (channels 0..47): expected ")
        assert Decoder(task="face", check_hash=False).decode(bad)[0].hash_status == "off"
        path = tmp_path / f"bad{ph}.bin"
        path.write_bytes(bad)
        with pytest.raises(SystemExit) as e:
            main(["-b", str(path), "--Task", "face", "-o", str(tmp_path / "f.json")])
        assert e.value.code == 4
        cap = capsys.readouterr()
        assert f"[latent {kind}:MISMATCH]" in cap.out and "latent hash mismatch" in cap.err
        path.write_bytes(latent_streams[(ph, "1")])
        with pytest.raises(SystemExit) as e:
            main(["-b", str(path), "--Task", "face", "-o", str(tmp_path / "f.json")])
        assert e.value.code == 0 and f"[latent {kind}:OK]" in capsys.readouterr().out
    path.write_bytes(_tamper_latent(latent_streams[("1", "0")]))
    with pytest.raises(SystemExit) as e:
        main(["-b", str(path), "--Task", "face", "-o", str(tmp_path / "f.json")])
    assert e.value.code == 0 and "[no latent hash]" in capsys.readouterr().out


def test_latent_hash_survives_extraction(latent_streams):
    """refsw-extract --layers base keeps the layer-0 DPH unit with its latent hash: the task
    branch checks the extracted stream (and reports a corrupted base layer); a corruption of
    layer 1 does not touch the latent the branch reads."""
    from refsw.apps.extract import extract
    data = latent_streams[("2", "1")]
    base = extract(data, 0)[0]
    assert [(d.hash_status, d.hash_layer) for d in Decoder(task="face").decode(base)] == [("match", 0)]
    assert Decoder(task="face").decode(extract(_tamper_latent(data), 0)[0])[0].hash_status == "mismatch"
    assert Decoder(task="face").decode(_tamper_latent(data, layer=1))[0].hash_status == "match"
    # the picture decoder checks the picture hash (of layer 1), not the latent hash
    pics = Decoder().decode(_tamper_latent(data, layer=1))
    assert (pics[0].hash_status, pics[0].hash_layer) == ("mismatch", 1)
    assert Decoder().decode(data)[0].hash_status == "match"


def test_latent_hash_only_in_learned_pictures():
    from syntax.errors import BitstreamError
    from syntax.units import rewrite_unit
    data = _encode(_pcm_pics(1), "--PictureHash", "2")
    u = _dph_units(data)[0]
    u.payload.dph_latent_crc = 7
    bad = rewrite_unit(data, u)
    assert _dph_units(bad)[0].payload.dph_latent_crc == 7
    with pytest.raises(BitstreamError) as e:
        Decoder().decode(bad)
    assert (e.value.element, e.value.clause) == ("dph_latent_crc", "7.8")
