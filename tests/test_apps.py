"""End-to-end checks of refsw-encode / refsw-decode / refsw-parse and the spec tables."""
import glob
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from refsw.apps.decode import _main as decode_main
from refsw.apps.encode import _main as encode_main
from refsw.apps.parse import _main as parse_main
from refsw.apps import run_app
from refsw.picture import Picture, read_png, write_png, write_yuv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def _cli(name, *args, cwd=None):
    exe = os.path.join(BIN, name)
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_spec_tables_are_current():
    from syntax.render import main
    pages = sorted(glob.glob(os.path.join(ROOT, "docs", "spec", "*.md")))
    assert pages
    assert main(["--check", *pages]) == 0


def test_readme_main_job(tmp_path):
    """The README's first command, minus the setup: default content, ai.cfg."""
    r = _cli("refsw-encode", "--cfg", os.path.join(ROOT, "ctc", "ai.cfg"), "-o", "str.bin",
             "--trace", "enc.trace", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli("refsw-decode", "-b", "str.bin", "-o", "rec.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[MD5:OK]" in r.stdout
    from refsw.content import default_image_path
    src = read_png(default_image_path())
    rec = read_png(tmp_path / "rec.png")
    if "CodingMode            : pcm" in open(os.path.join(ROOT, "ctc", "ai.cfg")).read():
        assert src == rec
    r = _cli("refsw-parse", "str.bin", "-o", "dec.trace", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "enc.trace").read_text() == (tmp_path / "dec.trace").read_text()


def _small_png(tmp_path, w=13, h=7):
    rng = np.random.default_rng(3)
    pic = Picture([rng.integers(0, 256, (h, w)).astype(np.uint16) for _ in range(3)], "444", 8, "rgb")
    p = tmp_path / "in.png"
    write_png(p, pic)
    return p, pic


def test_hash_mismatch_exits_nonzero(tmp_path, capsys):
    p, pic = _small_png(tmp_path)
    out = tmp_path / "s.bin"
    assert run_app("e", encode_main, ["-i", str(p), "-o", str(out)]) == 0
    data = bytearray(out.read_bytes())
    # flip one sample bit inside the PCM payload: parses, but the hash differs
    from syntax.units import parse_units
    pcm = [u for u in parse_units(bytes(data)) if u.type_name == "PCM"][0]
    data[pcm.offset + 4 + 2 + 5] ^= 0x01
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    capsys.readouterr()
    rc = run_app("refsw-decode", decode_main, ["-b", str(bad)])
    cap = capsys.readouterr()
    assert rc == 4 and "MISMATCH" in cap.out and "hash mismatch" in cap.err
    assert run_app("refsw-decode", decode_main, ["-b", str(bad), "--CheckHash", "0"]) == 0


def test_corrupt_stream_one_line_error_fast(tmp_path):
    p, _ = _small_png(tmp_path)
    out = tmp_path / "s.bin"
    assert run_app("e", encode_main, ["-i", str(p), "-o", str(out)]) == 0
    data = out.read_bytes()
    for cut, name in ((len(data) - 3, "trunc.bin"), (9, "short.bin")):
        (tmp_path / name).write_bytes(data[:cut])
        t0 = time.perf_counter()
        r = _cli("refsw-decode", "-b", name, cwd=tmp_path)
        dt = time.perf_counter() - t0
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr
        assert "bit " in lines[0] and ("unit_length" in lines[0] or "sps_" in lines[0] or "unit" in lines[0])
        assert dt < 20  # no hang; includes interpreter start-up (seconds on a loaded machine), the decode is ms


def test_corruption_everywhere_gives_bitstream_error_or_mismatch(tmp_path):
    p, _ = _small_png(tmp_path, 6, 4)
    out = tmp_path / "s.bin"
    assert run_app("e", encode_main, ["-i", str(p), "-o", str(out)]) == 0
    data = out.read_bytes()
    codes = set()
    for i in range(len(data)):
        d = bytearray(data)
        d[i] ^= 0xA5
        (tmp_path / "c.bin").write_bytes(bytes(d))
        codes.add(run_app("refsw-decode", decode_main, ["-b", str(tmp_path / "c.bin")]))
    assert codes <= {0, 2, 4}
    assert 2 in codes and 4 in codes


def test_yuv_10bit_420_odd_size_roundtrip(tmp_path):
    rng = np.random.default_rng(5)
    w, h = 17, 9
    pics = [Picture([rng.integers(0, 1024, (h, w)).astype(np.uint16),
                     rng.integers(0, 1024, ((h + 1) // 2, (w + 1) // 2)).astype(np.uint16),
                     rng.integers(0, 1024, ((h + 1) // 2, (w + 1) // 2)).astype(np.uint16)], "420", 10)
            for _ in range(3)]
    write_yuv(tmp_path / "in.yuv", pics)
    args = ["-i", str(tmp_path / "in.yuv"), "-wdt", str(w), "-hgt", str(h), "--InputBitDepth", "10",
            "-o", str(tmp_path / "s.bin")]
    assert run_app("e", encode_main, args) == 0
    assert run_app("d", decode_main, ["-b", str(tmp_path / "s.bin"), "-o", str(tmp_path / "out.yuv"),
                                      "--ref", str(tmp_path / "in.yuv")]) == 0
    assert (tmp_path / "out.yuv").read_bytes() == (tmp_path / "in.yuv").read_bytes()


def test_cfg_errors_name_file_and_line(tmp_path, capsys):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("Profile : main_intra\nQualty : 3\n")
    assert run_app("refsw-encode", encode_main, ["--cfg", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "bad.cfg:2" in err and "Quality" in err and "Traceback" not in err
    cfg.write_text("Profile : nonsense\n")
    assert run_app("refsw-encode", encode_main, ["--cfg", str(cfg)]) == 1
    assert "bad.cfg:1" in capsys.readouterr().err


def test_wrong_yuv_size_is_clear(tmp_path, capsys):
    (tmp_path / "x.yuv").write_bytes(b"\0" * 1000)
    rc = run_app("refsw-encode", encode_main, ["-i", str(tmp_path / "x.yuv"), "-wdt", "16", "-hgt", "16",
                                               "-o", str(tmp_path / "s.bin")])
    assert rc == 1
    assert "x.yuv" in capsys.readouterr().err


def test_picture_beyond_every_level_is_refused(tmp_path, capsys):
    (tmp_path / "big.yuv").write_bytes(b"\0" * (20000 * 2 * 3 // 2 * 2))
    rc = run_app("refsw-encode", encode_main, ["-i", str(tmp_path / "big.yuv"), "-wdt", "20000", "-hgt", "2",
                                               "-o", str(tmp_path / "s.bin")])
    assert rc == 1
    assert "level" in capsys.readouterr().err


def test_parse_units_lists_units(tmp_path, capsys):
    p, _ = _small_png(tmp_path)
    assert run_app("e", encode_main, ["-i", str(p), "-o", str(tmp_path / "s.bin")]) == 0
    capsys.readouterr()
    assert run_app("p", parse_main, ["--units", str(tmp_path / "s.bin")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[4] for line in out] == ["SPS", "PH", "PCM", "DPH", "EOS"]


def test_decode_task_branch_writes_json(tmp_path, capsys):
    """refsw-decode --task face with the shipped model: JSON out, no picture, errors in one line."""
    import json
    p, _ = _small_png(tmp_path, 70, 45)
    s = tmp_path / "s.bin"
    assert run_app("e", encode_main, ["--CodingMode", "learned", "-q", "20", "-i", str(p), "-o", str(s)]) == 0
    out = tmp_path / "faces.json"
    assert run_app("d", decode_main, ["-b", str(s), "--task", "face", "-o", str(out)]) == 0
    j = json.loads(out.read_text())
    assert j["task"] == "face" and (j["width"], j["height"]) == (70, 45) and isinstance(j["detections"], list)
    for d in j["detections"]:
        x0, y0, x1, y1 = d["box"]
        assert 0 <= x0 < x1 <= 70 and 0 <= y0 < y1 <= 45 and 0 < d["score"] < 1
    capsys.readouterr()
    assert run_app("d", decode_main, ["-b", str(s), "--task", "eyes"]) == 1
    assert "no task branch 'eyes'" in capsys.readouterr().err
    s0 = tmp_path / "s0.bin"
    assert run_app("e", encode_main, ["--CodingMode", "learned", "--TaskBranches", "none", "-i", str(p),
                                      "-o", str(s0)]) == 0
    capsys.readouterr()
    assert run_app("d", decode_main, ["-b", str(s0), "--task", "face"]) == 2
    assert "sps_task_branch_id" in capsys.readouterr().err
