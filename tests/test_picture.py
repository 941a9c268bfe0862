"""Tests for refsw.picture (PNG / raw YUV / y4m I/O and picture MD5)."""
from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refsw.picture import (
    Picture, PictureError, Y4mReader, Y4mWriter, YuvReader, YuvWriter,
    open_input, picture_md5, plane_md5, read_png, write_output, write_png, write_yuv,
)

SHAPES = {"400": 1, "420": 3, "444": 3}


def make_pic(w, h, cf="420", bd=8, cs="ycbcr", seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(h, w)]
    if cf == "420":
        shapes += [((h + 1) // 2, (w + 1) // 2)] * 2
    elif cf == "444":
        shapes += [(h, w)] * 2
    planes = [rng.integers(0, 1 << bd, s, dtype=np.uint16) for s in shapes]
    # make sure the extremes occur
    planes[0][0, 0] = (1 << bd) - 1
    planes[0][-1, -1] = 0
    return Picture(planes, cf, bd, cs)


def raw_png(path, w, h, bit_depth, colour_type, rows: bytes):
    """Minimal PNG writer (filter 0) for formats Pillow cannot write."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    data = (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    path.write_bytes(data)


# ---------------------------------------------------------------- Picture

def test_picture_properties_and_validate():
    p = make_pic(17, 9, "420", 10)
    assert (p.width, p.height) == (17, 9)
    assert [a.shape for a in p.planes] == [(9, 17), (5, 9), (5, 9)]
    assert p.component_names == ("Y", "Cb", "Cr")
    assert p.validate() is p
    assert p == make_pic(17, 9, "420", 10)
    assert p != make_pic(17, 9, "420", 10, seed=1)


@pytest.mark.parametrize("mutate, words", [
    (lambda p: p.planes.pop(), ["3 plane", "got 2"]),
    (lambda p: p.planes.__setitem__(1, np.zeros((4, 9), np.uint16)), ["Cb", "9x4", "9x5"]),
    (lambda p: p.planes.__setitem__(0, p.planes[0].astype(np.int32)), ["Y", "int32", "uint16"]),
    (lambda p: p.planes[2].__setitem__((1, 2), 1024), ["Cr", "1024", "x=2, y=1", "1023"]),
    (lambda p: setattr(p, "bit_depth", 7), ["bit_depth 7"]),
    (lambda p: setattr(p, "chroma_format", "422"), ["422"]),
    (lambda p: setattr(p, "colour_space", "rgb"), ["rgb", "444"]),
])
def test_validate_errors(mutate, words):
    p = make_pic(17, 9, "420", 10)
    mutate(p)
    with pytest.raises(PictureError) as ei:
        p.validate("clip.yuv", frame=3)
    msg = str(ei.value)
    assert msg.startswith("clip.yuv, frame 3")
    for w in words:
        assert w in msg


def test_rgb_component_order_documented():
    assert "0 = R, 1 = G, 2 = B" in Picture.__doc__
    assert make_pic(4, 4, "444", 8, "rgb").component_names == ("R", "G", "B")


# ---------------------------------------------------------------- PNG

def test_png_rgb8_round_trip(tmp_path):
    p = make_pic(17, 9, "444", 8, "rgb")
    f = tmp_path / "a.png"
    write_png(f, p)
    q = read_png(f)
    assert q == p
    from PIL import Image
    with Image.open(f) as im:  # R, G, B order on disk
        assert im.mode == "RGB"
        assert im.getpixel((3, 2)) == tuple(int(a[2, 3]) for a in p.planes)


@pytest.mark.parametrize("bd", [8, 10, 12, 16])
def test_png_grey_round_trip(tmp_path, bd):
    p = make_pic(17, 9, "400", bd)
    f = tmp_path / "g.png"
    write_png(f, p)
    q = read_png(f)
    assert q == p and q.bit_depth == bd and q.colour_space == "ycbcr"


def test_png_10bit_is_scaled_on_disk(tmp_path):
    p = Picture([np.array([[1023, 0, 512]], np.uint16)], "400", 10)
    f = tmp_path / "g.png"
    write_png(f, p)
    from PIL import Image
    with Image.open(f) as im:
        assert list(np.array(im).ravel()) == [1023 << 6, 0, 512 << 6]


def test_png_rgba_drops_alpha(tmp_path):
    from PIL import Image
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 255
    f = tmp_path / "a.png"
    Image.fromarray(rgba).save(f)
    q = read_png(f)
    assert q.colour_space == "rgb" and len(q.planes) == 3
    assert [int(a[0, 0]) for a in q.planes] == [10, 20, 30]
    rgba[0, 0, 3] = 7
    Image.fromarray(rgba).save(f)
    with pytest.warns(UserWarning, match="alpha"):
        read_png(f)


def test_png_palette_becomes_rgb(tmp_path):
    from PIL import Image
    im = Image.new("P", (5, 3))
    im.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    im.putpixel((1, 1), 1)
    f = tmp_path / "p.png"
    im.save(f)
    q = read_png(f)
    assert q.colour_space == "rgb" and q.chroma_format == "444" and q.bit_depth == 8
    assert [int(a[1, 1]) for a in q.planes] == [200, 100, 50]


def test_png_16bit_rgb_rejected(tmp_path):
    f = tmp_path / "rgb16.png"
    raw_png(f, 2, 1, 16, 2, b"\x00" + bytes(12))
    with pytest.raises(PictureError, match=r"rgb16\.png.*16-bit RGB.*Pillow"):
        read_png(f)


def test_png_write_errors(tmp_path):
    with pytest.raises(PictureError, match=r"x\.png.*YCbCr 420.*\.yuv"):
        write_png(tmp_path / "x.png", make_pic(4, 4, "420", 8))
    with pytest.raises(PictureError, match="10-bit RGB"):
        write_png(tmp_path / "x.png", make_pic(4, 4, "444", 10, "rgb"))


def test_png_not_png(tmp_path):
    f = tmp_path / "bad.png"
    f.write_bytes(b"hello world, not a png")
    with pytest.raises(PictureError, match=r"bad\.png.*signature"):
        read_png(f)


# ---------------------------------------------------------------- raw YUV

@pytest.mark.parametrize("cf", ["400", "420", "444"])
@pytest.mark.parametrize("bd", [8, 10])
def test_yuv_round_trip(tmp_path, cf, bd):
    pics = [make_pic(17, 9, cf, bd, seed=s) for s in range(3)]
    f = tmp_path / "a.yuv"
    assert write_yuv(f, pics) == 3
    n_samples = 17 * 9 + (2 * 9 * 5 if cf == "420" else 2 * 17 * 9 if cf == "444" else 0)
    assert f.stat().st_size == 3 * n_samples * (1 if bd == 8 else 2)
    r = YuvReader(f, 17, 9, cf, bd)
    assert r.num_frames == len(r) == 3
    assert list(r) == pics
    assert list(r) == pics  # iterable more than once


def test_yuv_10bit_little_endian(tmp_path):
    p = Picture([np.array([[0x0102, 0x03FF]], np.uint16)], "400", 10)
    f = tmp_path / "a.yuv"
    write_yuv(f, [p])
    assert f.read_bytes() == b"\x02\x01\xff\x03"


def test_yuv_start_and_max_frames(tmp_path):
    pics = [make_pic(6, 4, "420", 8, seed=s) for s in range(5)]
    f = tmp_path / "a.yuv"
    write_yuv(f, pics)
    r = YuvReader(f, 6, 4, "420", 8, start_frame=1, max_frames=2)
    assert r.num_frames == 2 and r.total_frames == 5
    assert list(r) == pics[1:3]
    assert list(YuvReader(f, 6, 4, "420", 8, start_frame=3)) == pics[3:]
    with pytest.raises(PictureError, match="start_frame 6"):
        YuvReader(f, 6, 4, "420", 8, start_frame=6)


def test_yuv_wrong_size(tmp_path):
    f = tmp_path / "a.yuv"
    f.write_bytes(bytes(17 * 9 * 3 // 2 * 2 + 5))  # not a multiple of any 17x9 420 frame
    with pytest.raises(PictureError) as ei:
        YuvReader(f, 17, 9, "420", 8)
    msg = str(ei.value)
    assert "a.yuv" in msg and "frame size is 243 bytes" in msg and "remainder of" in msg


def test_yuv_bad_params(tmp_path):
    f = tmp_path / "a.yuv"
    f.write_bytes(bytes(10))
    with pytest.raises(PictureError, match=r"a\.yuv.*width"):
        YuvReader(f, 0, 9, "420", 8)
    with pytest.raises(PictureError, match="chroma format"):
        YuvReader(f, 1, 1, "422", 8)
    with pytest.raises(PictureError, match="cannot open"):
        YuvReader(tmp_path / "missing.yuv", 4, 4, "420", 8)


def test_yuv_sample_out_of_range(tmp_path):
    good = make_pic(4, 2, "420", 10)
    f = tmp_path / "a.yuv"
    write_yuv(f, [good, good])
    data = bytearray(f.read_bytes())
    frame = len(data) // 2
    cb_first = 4 * 2 * 2
    data[frame + cb_first: frame + cb_first + 2] = (1500).to_bytes(2, "little")
    f.write_bytes(bytes(data))
    r = YuvReader(f, 4, 2, "420", 10)
    with pytest.raises(PictureError) as ei:
        list(r)
    msg = str(ei.value)
    assert "a.yuv" in msg and "frame 1" in msg and "component Cb" in msg and "1500" in msg


def test_yuv_writer_checks(tmp_path):
    f = tmp_path / "a.yuv"
    with YuvWriter(f) as w:
        w.write(make_pic(4, 4))
        with pytest.raises(PictureError, match="frame 1.*differs"):
            w.write(make_pic(6, 4))
        with pytest.raises(PictureError, match="rgb"):
            w.write(make_pic(4, 4, "444", 8, "rgb"))
    assert f.stat().st_size == 24


@settings(max_examples=25, deadline=None)
@given(w=st.integers(1, 9), h=st.integers(1, 9), cf=st.sampled_from(["400", "420", "444"]),
       bd=st.sampled_from([8, 9, 10, 16]), seed=st.integers(0, 1000))
def test_yuv_and_y4m_round_trip_property(tmp_path_factory, w, h, cf, bd, seed):
    d = tmp_path_factory.mktemp("rt")
    p = make_pic(w, h, cf, bd, seed=seed)
    write_yuv(d / "a.yuv", [p])
    assert list(YuvReader(d / "a.yuv", w, h, cf, bd)) == [p]
    write_output(d / "a.y4m", [p])
    assert list(Y4mReader(d / "a.y4m")) == [p]


# ---------------------------------------------------------------- y4m

@pytest.mark.parametrize("cf", ["400", "420", "444"])
@pytest.mark.parametrize("bd", [8, 10])
def test_y4m_round_trip(tmp_path, cf, bd):
    pics = [make_pic(17, 9, cf, bd, seed=s) for s in range(3)]
    f = tmp_path / "a.y4m"
    with Y4mWriter(f, 17, 9, cf, bd, fps=(30000, 1001)) as w:
        for p in pics:
            w.write(p)
    r = Y4mReader(f)
    assert (r.width, r.height, r.chroma_format, r.bit_depth) == (17, 9, cf, bd)
    assert r.frame_rate == (30000, 1001)
    assert r.num_frames == 3
    assert list(r) == pics
    assert list(Y4mReader(f, start_frame=1, max_frames=1)) == pics[1:2]
    assert Y4mReader(f, start_frame=1).num_frames == 2


def test_y4m_header_tags(tmp_path):
    f = tmp_path / "a.y4m"
    y = bytes(range(12))
    f.write_bytes(b"YUV4MPEG2 W4 H3 F50:1 It A1:1 XYSCSS=420JPEG\nFRAME Ixyz\n" + y + bytes(8))
    r = Y4mReader(f)
    assert (r.chroma_format, r.bit_depth, r.interlace, r.frame_rate) == ("420", 8, "t", (50, 1))
    [p] = list(r)
    assert p.planes[0].ravel().tolist() == list(range(12))


@pytest.mark.parametrize("tag, cf, bd", [
    ("420jpeg", "420", 8), ("420paldv", "420", 8), ("420mpeg2", "420", 8), ("420", "420", 8),
    ("420p10", "420", 10), ("420p12", "420", 12), ("420p16", "420", 16), ("444", "444", 8),
    ("444p10", "444", 10), ("mono", "400", 8), ("mono10", "400", 10), ("mono16", "400", 16),
])
def test_y4m_colour_tags(tmp_path, tag, cf, bd):
    f = tmp_path / "a.y4m"
    f.write_bytes(f"YUV4MPEG2 W2 H2 F25:1 C{tag}\n".encode())
    r = Y4mReader(f)
    assert (r.chroma_format, r.bit_depth, r.num_frames) == (cf, bd, 0)


@pytest.mark.parametrize("header, words", [
    (b"YUV4MPEG W4 H4\n", ["not a y4m file"]),
    (b"YUV4MPEG2 H4 F25:1\n", ["no W"]),
    (b"YUV4MPEG2 W4 H0\n", ["H0"]),
    (b"YUV4MPEG2 W4 H4 C422\n", ["C422", "supported"]),
    (b"YUV4MPEG2 W4 H4 C420p7\n", ["C420p7"]),
    (b"YUV4MPEG2 W4 H4 F25\n", ["F'25'", "num:den"]),
    (b"YUV4MPEG2 W4 H4 Q1\n", ["unknown", "Q1"]),
    (b"YUV4MPEG2 W4 H4", ["ends inside", "newline"]),
    (b"YUV4MPEG2 W4 " + b"X" * 5000 + b"\n", ["not terminated"]),
])
def test_y4m_bad_headers(tmp_path, header, words):
    f = tmp_path / "bad.y4m"
    f.write_bytes(header)
    with pytest.raises(PictureError) as ei:
        Y4mReader(f)
    msg = str(ei.value)
    assert "bad.y4m" in msg and "byte offset 0" in msg
    for w in words:
        assert w in msg


def test_y4m_truncated_and_bad_frame(tmp_path):
    f = tmp_path / "t.y4m"
    hdr = b"YUV4MPEG2 W4 H2 C420jpeg\n"
    frame = b"FRAME\n" + bytes(12)
    f.write_bytes(hdr + frame + b"FRAME\n" + bytes(5))
    with pytest.raises(PictureError, match=r"t\.y4m, frame 1, byte offset 49: truncated"):
        list(Y4mReader(f))
    with pytest.raises(PictureError, match="frame 1.*truncated"):
        Y4mReader(f).num_frames
    f.write_bytes(hdr + frame + b"FRAMX\n" + bytes(12))
    with pytest.raises(PictureError, match=r"frame 1, byte offset 43: expected a 'FRAME'"):
        list(Y4mReader(f))


def test_y4m_16bit_sample_range(tmp_path):
    f = tmp_path / "r.y4m"
    y = np.array([1, 2, 3, 4096], "<u2").tobytes()
    f.write_bytes(b"YUV4MPEG2 W2 H2 Cmono12\nFRAME\n" + y)
    with pytest.raises(PictureError, match="frame 0, component Y.*4096"):
        list(Y4mReader(f))


def test_y4m_default_frame_rate_and_writer_checks(tmp_path):
    f = tmp_path / "a.y4m"
    f.write_bytes(b"YUV4MPEG2 W2 H2\n")
    r = Y4mReader(f)
    assert r.frame_rate == (25, 1) and r.chroma_format == "420" and r.bit_depth == 8
    with Y4mWriter(tmp_path / "b.y4m", 4, 4, "420", 8) as w:
        with pytest.raises(PictureError, match="b.y4m, frame 0.*differs"):
            w.write(make_pic(4, 4, "420", 10))
    assert (tmp_path / "b.y4m").read_bytes().startswith(b"YUV4MPEG2 W4 H4 F25:1 ")


# ---------------------------------------------------------------- dispatch

def test_open_input_and_write_output(tmp_path):
    p = make_pic(17, 9, "420", 10)
    write_output(tmp_path / "a.yuv", [p, p])
    write_output(tmp_path / "a.Y4M", [p])
    g = make_pic(5, 3, "400", 8)
    assert write_output(tmp_path / "a.png", [g]) == 1
    assert list(open_input(tmp_path / "a.yuv", width=17, height=9, chroma_format="420",
                           bit_depth=10)) == [p, p]
    assert list(open_input(tmp_path / "a.Y4M")) == [p]
    assert list(open_input(tmp_path / "a.png")) == [g]
    with pytest.raises(PictureError) as ei:
        open_input(tmp_path / "a.yuv", width=17)
    assert "a.yuv" in str(ei.value) and "height, chroma_format, bit_depth" in str(ei.value)
    with pytest.raises(PictureError, match="bit_depth=8 but the file has 10"):
        open_input(tmp_path / "a.Y4M", bit_depth=8)
    with pytest.raises(PictureError, match=r"\.bmp"):
        open_input(tmp_path / "a.bmp")
    with pytest.raises(PictureError, match="exactly one"):
        write_output(tmp_path / "b.png", [g, g])
    with pytest.raises(PictureError, match=r"\.txt"):
        write_output(tmp_path / "b.txt", [g])


# ---------------------------------------------------------------- MD5

def test_plane_md5_matches_hashlib():
    a = np.array([[0, 1, 2], [255, 128, 7]], np.uint16)
    assert plane_md5(a, 8) == hashlib.md5(bytes([0, 1, 2, 255, 128, 7])).digest()
    b = np.array([[0x0102, 0x03FF], [0x0000, 0x0200]], np.uint16)
    packed = b"".join(struct.pack("<H", v) for v in [0x0102, 0x03FF, 0x0000, 0x0200])
    assert packed == b"\x02\x01\xff\x03\x00\x00\x00\x02"
    assert plane_md5(b, 10) == hashlib.md5(packed).digest()
    # non-contiguous view hashes in raster order of the view
    c = np.arange(12, dtype=np.uint16).reshape(3, 4)[:, ::2]
    assert plane_md5(c, 8) == hashlib.md5(bytes([0, 2, 4, 6, 8, 10])).digest()
    with pytest.raises(PictureError, match="8-bit"):
        plane_md5(np.array([[256]], np.uint16), 8)


def test_picture_md5():
    p = make_pic(5, 3, "420", 10)
    md5s = picture_md5(p)
    assert len(md5s) == 3
    assert md5s[1] == hashlib.md5(p.planes[1].astype("<u2").tobytes()).digest()
