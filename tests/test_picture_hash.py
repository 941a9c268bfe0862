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
