"""Tests for refsw.cfg (VTM-style cfg files + command line)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from refsw.cfg import CfgError, Config, IntList, Option, OptionTable, dump, parse


def make_table():
    return OptionTable([
        Option("InputFile", str, "", "input picture or sequence", short="-i", group="Input/output"),
        Option("BitstreamFile", str, "str.bin", "output bitstream", short="-b",
               group="Input/output"),
        Option("SourceWidth", int, 0, "luma width", short="-wdt", range=(0, 16384),
               group="Input/output"),
        Option("FramesToBeEncoded", int, 0, "number of frames", short="-f", range=(0, None),
               group="Input/output"),
        Option("QP", int, 32, "quantisation parameter", short="-q", range=(-12, 63),
               group="Coding"),
        Option("QpOffset", int, 0, "QP offset", group="Coding"),
        Option("Lambda", float, 1.5, "rate-distortion lambda", range=(0.0, None), group="Coding"),
        Option("UseAdaptiveQp", bool, False, "adaptive QP", group="Coding"),
        Option("Profile", str, "main", "profile", choices=["main", "high", "lite"],
               group="Coding"),
        Option("TemporalLayerQps", IntList, [1, 2, 3], "per-layer QP offsets",
               range=(-10, 10), group="Coding"),
        Option("ChromaFormat", int, 420, "chroma format", choices=[400, 420, 444],
               group="Coding"),
    ])


@pytest.fixture
def table():
    return make_table()


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def err(argv, table):
    with pytest.raises(CfgError) as ei:
        parse(argv, table)
    return str(ei.value)


def test_defaults(table):
    cfg, files = parse([], table)
    assert files == []
    assert cfg.QP == 32 and cfg["Profile"] == "main" and cfg.TemporalLayerQps == [1, 2, 3]
    assert cfg.Lambda == 1.5 and cfg.UseAdaptiveQp is False
    assert set(cfg) == set(table.keys())
    assert all(cfg.source[k] == "default" for k in cfg)
    assert not cfg.help_requested


def test_cfg_file_syntax_and_sources(tmp_path, table):
    f = write(tmp_path, "a.cfg", """# a comment
   # indented comment

QP              : 27      # trailing comment
InputFile       : my clip.yuv   # spaces kept inside
UseAdaptiveQp   : true
TemporalLayerQps: 1, -2 3
Lambda          : 2e-3
BitstreamFile   : "a#b.bin"   # quoted: '#' kept
Profile:high
""")
    cfg, files = parse(["--cfg", f], table)
    assert files == [f]
    assert cfg.QP == 27 and cfg.InputFile == "my clip.yuv" and cfg.UseAdaptiveQp is True
    assert cfg.TemporalLayerQps == [1, -2, 3] and cfg.Lambda == 2e-3
    assert cfg.BitstreamFile == "a#b.bin" and cfg.Profile == "high"
    assert cfg.source["QP"] == f"{f}:4"
    assert cfg.source["Profile"] == f"{f}:10"
    assert cfg.source["SourceWidth"] == "default"


def test_merge_order_left_to_right(tmp_path, table):
    a = write(tmp_path, "a.cfg", "QP : 22\nSourceWidth : 100\n")
    b = write(tmp_path, "b.cfg", "\nQP : 37\n")
    cfg, files = parse(["-c", a, "--cfg", b], table)
    assert files == [a, b]
    assert cfg.QP == 37 and cfg.source["QP"] == f"{b}:2"
    assert cfg.SourceWidth == 100 and cfg.source["SourceWidth"] == f"{a}:2"
    cfg, _ = parse([f"--cfg={b}", "-c", a], table)
    assert cfg.QP == 22 and cfg.source["QP"] == f"{a}:1"


def test_cli_wins_regardless_of_position(tmp_path, table):
    a = write(tmp_path, "a.cfg", "QP : 22\nInputFile : x.yuv\n")
    for argv in (["--QP", "30", "--cfg", a], ["--cfg", a, "--QP=30"], ["-q", "30", "-c", a]):
        cfg, _ = parse(argv, table)
        assert cfg.QP == 30 and cfg.source["QP"] == "command line"
        assert cfg.InputFile == "x.yuv"
    cfg, _ = parse(["--QP", "30", "--QP", "31"], table)
    assert cfg.QP == 31  # last one on the command line wins


def test_cli_forms(table):
    cfg, _ = parse(["-i", "in.png", "--QpOffset", "-3", "--TemporalLayerQps=4,5",
                    "--UseAdaptiveQp", "--Lambda", "0.25", "-wdt", "64"], table)
    assert cfg.InputFile == "in.png" and cfg.QpOffset == -3 and cfg.TemporalLayerQps == [4, 5]
    assert cfg.UseAdaptiveQp is True and cfg.Lambda == 0.25 and cfg.SourceWidth == 64
    cfg, _ = parse(["--UseAdaptiveQp", "0", "--QP", "1"], table)
    assert cfg.UseAdaptiveQp is False and cfg.QP == 1
    cfg, _ = parse(["--UseAdaptiveQp", "--QP", "1"], table)
    assert cfg.UseAdaptiveQp is True
    cfg, _ = parse(["--UseAdaptiveQp=FALSE", "--TemporalLayerQps", "1 2  3"], table)
    assert cfg.UseAdaptiveQp is False and cfg.TemporalLayerQps == [1, 2, 3]
    cfg, _ = parse(["--TemporalLayerQps="], table)
    assert cfg.TemporalLayerQps == []
    cfg, _ = parse(["--help"], table)
    assert cfg.help_requested


def test_unknown_key_in_file(tmp_path, table):
    f = write(tmp_path, "a.cfg", "QP : 22\n\nFramesToBeEncode : 3\n")
    msg = err(["--cfg", f], table)
    assert f"{f}:3" in msg and "FramesToBeEncode" in msg and "did you mean 'FramesToBeEncoded'" in msg
    f = write(tmp_path, "b.cfg", "qp : 22\n")
    assert "did you mean 'QP'" in err(["--cfg", f], table)
    f = write(tmp_path, "c.cfg", "Zzzzz : 1\n")
    msg = err(["--cfg", f], table)
    assert f"{f}:1" in msg and "did you mean" not in msg


def test_unknown_cli_flag(table):
    msg = err(["--Qp", "3"], table)
    assert "command line" in msg and "'--Qp'" in msg and "did you mean '--QP'" in msg
    assert "did you mean '--InputFile'" in err(["-InputFile", "x"], table)
    assert "unexpected argument 'stray'" in err(["stray"], table)
    assert "--QP needs a value" in err(["--QP"], table)


@pytest.mark.parametrize("line, words", [
    ("QP : abc", ["QP", "'abc'", "integer", "-12..63"]),
    ("QP : 64", ["QP", "'64'", "out of range", "-12..63"]),
    ("QP : 3.5", ["QP", "'3.5'", "integer"]),
    ("QP :", ["QP", "empty value"]),
    ("Lambda : -1", ["Lambda", "'-1'", ">= 0.0"]),
    ("Lambda : fast", ["Lambda", "not a number"]),
    ("UseAdaptiveQp : yes", ["UseAdaptiveQp", "'yes'", "0, 1, true or false"]),
    ("Profile : ultra", ["Profile", "'ultra'", "one of main, high, lite"]),
    ("ChromaFormat : 422", ["ChromaFormat", "'422'", "one of 400, 420, 444"]),
    ("TemporalLayerQps : 1, 20", ["TemporalLayerQps", "'1, 20'", "20 is out of range", "-10..10"]),
    ("TemporalLayerQps : 1,,2", ["TemporalLayerQps", "empty list element"]),
    ("FramesToBeEncoded : -1", ["FramesToBeEncoded", ">= 0"]),
])
def test_bad_values_in_file(tmp_path, table, line, words):
    f = write(tmp_path, "a.cfg", "# header\n" + line + "   # why\n")
    msg = err(["--cfg", f], table)
    assert msg.startswith(f"{f}:2: ")
    for w in words:
        assert w in msg


def test_bad_value_on_cli(table):
    msg = err(["-q", "99"], table)
    assert msg.startswith("command line: ") and "-q (--QP)" in msg and "'99'" in msg
    assert "-12..63" in msg


def test_syntax_errors(tmp_path, table):
    f = write(tmp_path, "a.cfg", "QP = 22\n")
    msg = err(["--cfg", f], table)
    assert f"{f}:1" in msg and "'Key = value' is not accepted" in msg and "QP : 22" in msg
    f = write(tmp_path, "b.cfg", "QP 22\n")
    assert "expected 'Key : value'" in err(["--cfg", f], table)
    f = write(tmp_path, "c.cfg", "QP : 22\nLambda : 1\nQP : 23\n")
    msg = err(["--cfg", f], table)
    assert f"{f}:3" in msg and "duplicate key 'QP'" in msg and "line 1" in msg
    f = write(tmp_path, "d.cfg", 'InputFile : "abc" x\n')
    assert "after quoted string" in err(["--cfg", f], table)
    missing = str(tmp_path / "nope.cfg")
    msg = err(["--cfg", missing], table)
    assert "cfg file not found" in msg and missing in msg
    assert "--cfg needs a value" in err(["--cfg"], table)


def test_option_table_checks():
    with pytest.raises(ValueError, match="default"):
        Option("QP", int, 99, range=(0, 63))
    with pytest.raises(ValueError, match="type"):
        Option("QP", dict, {})
    with pytest.raises(ValueError, match="reserved"):
        Option("Cfg", str, "")
    with pytest.raises(ValueError, match="reserved"):
        Option("Config", str, "", short="-c")
    t = OptionTable([Option("QP", int, 1, short="-q")])
    with pytest.raises(ValueError, match="clashes"):
        t.add(Option("Qp", int, 1))
    with pytest.raises(ValueError, match="already used"):
        t.add(Option("Quality", int, 1, short="-q"))
    with pytest.raises(ValueError, match="Config attribute"):
        t.add(Option("keys", int, 1))


def test_help_text(table):
    text = table.help_text("refsw-encode")
    assert text.startswith("usage: refsw-encode")
    assert "--cfg FILE" in text
    io, coding = text.index("=== Input/output ==="), text.index("=== Coding ===")
    assert io < text.index("-i VALUE, --InputFile VALUE") < coding
    assert coding < text.index("--QP VALUE")
    assert "default: 32" in text and "in -12..63" in text and 'default: ""' in text
    assert "one of main, high, lite" in text and "default: 1,2,3" in text


def test_dump_round_trip(tmp_path, table):
    cfg, _ = parse(["--InputFile", " lead and # hash ", "--QP", "-5", "--Lambda", "0.1",
                    "--UseAdaptiveQp", "1", "--TemporalLayerQps", "", "--BitstreamFile",
                    '"quoted".bin', "--Profile", "lite"], table)
    text = dump(cfg, table)
    assert "QP                : -5" in text and "#======== Coding ========" in text
    f = write(tmp_path, "run.cfg", text)
    back, _ = parse(["--cfg", f], table)
    assert back == cfg and back.as_dict() == cfg.as_dict()
    assert back.source["QP"].startswith(f + ":")
    with_src = dump(cfg, table, sources=True)
    assert "# from command line" in with_src and "# from default" in with_src
    back2, _ = parse(["--cfg", write(tmp_path, "run2.cfg", with_src)], table)
    assert back2 == cfg


@settings(max_examples=40, deadline=None)
@given(s=st.text(max_size=12), qp=st.integers(-12, 63),
       lam=st.floats(min_value=0, allow_nan=False, allow_infinity=True),
       lst=st.lists(st.integers(-10, 10), max_size=5), flag=st.booleans())
def test_dump_round_trip_property(tmp_path_factory, s, qp, lam, lst, flag):
    table = make_table()
    values = dict(table.defaults())
    values.update(InputFile=s, QP=qp, Lambda=lam, TemporalLayerQps=lst, UseAdaptiveQp=flag)
    cfg = Config(values, {k: "test" for k in values})
    p = tmp_path_factory.mktemp("d") / "x.cfg"
    p.write_text(dump(cfg, table), encoding="utf-8")
    back, _ = parse(["--cfg", str(p)], table)
    assert back == cfg
