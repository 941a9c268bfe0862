"""The conformance suite: runner, reproducibility, external decoders, coverage."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from refsw.conformance import coverage, load_manifest, run, spec_elements, ManifestError, suite_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_suite_passes_with_equivalence_modes():
    """Every stream decodes to its expected hashes, also with 1 and 2 threads and
    through the int64 reference path."""
    assert run(["--equivalence"]) == 0


def test_suite_is_reproducible():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "conformance", "regenerate.py"), "--check"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_external_decoder_is_ours(capsys):
    exe = os.path.join(os.path.dirname(sys.executable), "refsw-decode")
    assert run(["--decoder", f"{exe} -b {{in}} -o {{out}}"]) == 0
    assert "decoder:" in capsys.readouterr().out


def test_external_decoder_that_lies_fails(tmp_path):
    # a "decoder" that outputs zeros of the right size must fail every positive stream
    fake = tmp_path / "fake.py"
    fake.write_text("import sys\nopen(sys.argv[2], 'wb').write(b'\\0' * 10)\n")
    n = run(["--decoder", f"{sys.executable} {fake} {{in}} {{out}}", "-k", "pcm"])
    assert n == 5   # 4 positive pcm streams + neg_pcm_without_ph (accepted)


def test_failures_are_counted(tmp_path):
    d = tmp_path / "suite"
    shutil.copytree(suite_dir(), d)
    m = json.loads((d / "manifest.json").read_text())
    m["streams"][1]["md5"][0][0] = "0" * 32
    (d / "manifest.json").write_text(json.dumps(m))
    assert run(["--suite", str(d)]) == 1
    m["streams"][0].pop("md5")
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match="md5"):
        load_manifest(str(d / "manifest.json"))


def test_task_output_is_checked(tmp_path):
    d = tmp_path / "suite"
    shutil.copytree(suite_dir(), d)
    m = json.loads((d / "manifest.json").read_text())
    s = next(s for s in m["streams"] if "face" in s.get("task_sha256", {}))
    assert run(["--suite", str(d), "-k", s["name"]]) == 0
    s["task_sha256"]["face"] = "0" * 64
    (d / "manifest.json").write_text(json.dumps(m))
    assert run(["--suite", str(d), "-k", s["name"]]) == 1


def test_coverage_report(capsys):
    """--coverage: element values (flags and small enumerations such as dph_hash_type value by
    value), every T2.3 filter phase and the decoding-process branches, with percentages; the
    suite reaches every element value, every phase and every branch but the two-pass latent
    decoding of 10.9 (no model with a spatial context has registered integer data)."""
    from refsw.decoder import probe
    assert run(["--coverage"]) == 0
    assert probe.COUNTER is None                    # the probe is off again after the run
    out = capsys.readouterr().out
    m = re.search(r"syntax coverage: (\d+)/(\d+) element values \(100.0%\)", out)
    assert m and m.group(1) == m.group(2)
    assert "filter phase coverage (T2.3): 48/48 (100.0%): luma 16/16, chroma 32/32" in out
    m = re.search(r"decoding-process branches: (\d+)/(\d+) \((\S+)%\)\n  not reached: (.*)", out)
    assert m and int(m.group(1)) == int(m.group(2)) - 1
    assert m.group(4) == "latent decoding passes: 2 (checkerboard context) (10.9)"
    assert "not counted (feature payload: Track 1" in out and "fp_dim" in out
    spec = spec_elements()
    assert "sps_profile_idc" in spec and "ph_quality_idx" in spec and spec["sps_pcm_enabled_flag"] == "flag"
    assert spec["dph_hash_type"] == "enum" and spec["ph_pic_type"] == "enum"
    cov = coverage({"x": "        48  sps_profile_idc   u(8)   = 1\n        0  sps_pcm_enabled_flag u(1) = 1\n"
                         "        56  dph_hash_type  u(8) = 1\n"})
    got = dict(cov["items"])
    assert got["sps_profile_idc"] and got["sps_pcm_enabled_flag=1"] and not got["sps_pcm_enabled_flag=0"]
    assert got["dph_hash_type=1"] and not got["dph_hash_type=0"] and "sps_chroma_format_idc=2" not in got
    assert ("sps_chroma_format_idc=2", "shall not be 2 (6.1)") in cov["excluded"]


#: what each stream added for #28 / #30 exercises: decoding-process probe keys (refsw.decoder.probe)
NEW_STREAMS = {
    "syntax_feature_profile_8x8": [("picture hash", "no DPH unit of HighestLayer")],
    "learned_ycbcr444_64x64": [("learned colour format", "YCbCr 4:4:4")],
    "learned_ycbcr420_crc_64x64": [("learned colour format", "YCbCr 4:2:0"), ("picture hash", "CRC-32"),
                                   ("latent hash (task mode)", "CRC-32")],
    "learned_one_layer_64x64": [("latent layers of the SPS", "1")],
    "learned_task_face_latent_hash_256x192": [("latent hash (task mode)", "MD5")],
    "inner_hevc_crc_hash": [("picture hash", "CRC-32")],
    "inner_hevc_spatial_072": [("T2.3 spatial resampling", "on")] + [("T2.3 luma phase", p) for p in range(16)]
    + [("T2.3 chroma phase", p) for p in range(32)],
    "inner_hevc_temporal_gap4": [("T2.4 dropped picture", "weighted average, gap >= 3")],
    "inner_hevc_bitdepth_expand_10bit": [("T2.5 bit depth", "d > 0 (InnerBitDepth > CodedBitDepth)")],
    "inner_hevc_postfilter_luma": [("T2.6 post filter", "luma on"), ("T2.6 post filter", "chroma on")],
    "inner_hevc_tools_off": [("T2.7 regions of interest", "none (rm_num_roi 0)"),
                             ("T2.7 regions of interest", "from the previous picture")],
}


@pytest.mark.parametrize("name", sorted(NEW_STREAMS))
def test_new_streams_exercise_their_paths(name):
    """Each stream of #28 "Paths no stream exercises" (and the CRC stream of #30) reaches the
    branches it is made for, with the probe on; with the probe off (None, the default) the
    decoder records nothing."""
    from collections import Counter
    from refsw.conformance import decode_internal, decode_task
    from refsw.decoder import probe
    from syntax.units import parse_units
    m = load_manifest(os.path.join(suite_dir(), "manifest.json"))
    s = next(s for s in m["streams"] if s["name"] == name)
    data = open(os.path.join(suite_dir(), s["file"]), "rb").read()
    assert probe.COUNTER is None
    got, _ = decode_internal(data)
    assert got == s["md5"] and probe.COUNTER is None
    probe.COUNTER = Counter()
    try:
        decode_internal(data)
        for task in s.get("task_sha256") or {}:
            decode_task(data, task)
        reached = probe.COUNTER
    finally:
        probe.COUNTER = None
    missing = [k for k in NEW_STREAMS[name] if k not in reached]
    assert not missing, missing
    units = parse_units(data)
    if name == "inner_hevc_tools_off":
        sps, rm = units[0].payload, units[1].payload
        assert all(sps.get(f) for f in ("sps_roi_enabled_flag", "sps_spatial_resampling_enabled_flag",
                                         "sps_temporal_resampling_enabled_flag",
                                         "sps_bit_depth_truncation_enabled_flag", "sps_post_filter_enabled_flag"))
        assert [rm.get(f) for f in ("rm_spatial_resampling_flag", "rm_temporal_resampling_flag",
                                    "rm_bit_depth_truncation_flag", "rm_post_filter_flag")] == [0, 0, 0, 0]
    if name == "inner_hevc_bitdepth_expand_10bit":
        rm = units[1].payload
        assert (rm.rm_inner_bit_depth_minus8 + 8) - (10 - rm.rm_bit_depth_shift) == 2      # d = 2
    if name == "inner_hevc_spatial_072":
        rm = units[1].payload
        assert (rm.rm_coded_width_in_luma_samples, rm.rm_coded_height_in_luma_samples) == (46, 34)
    if "crc" in name:
        assert {u.payload.dph_hash_type for u in units if u.unit_type == 8} == {1}


def test_latent_hash_mismatch_fails_the_stream(tmp_path):
    """A stream whose decoded latent differs from its latent hash fails with LatentHashMismatch,
    even when the manifest's picture hashes are those of the (tampered) stream."""
    import hashlib
    from refsw.conformance import decode_internal, trace_of
    from test_picture_hash import _tamper_latent   # tests/ is on sys.path (pytest rootdir-relative import)
    etree, _ = _junit_schema()
    d = tmp_path / "suite"
    shutil.copytree(suite_dir(), d)
    m = json.loads((d / "manifest.json").read_text())
    s = next(s for s in m["streams"] if s["name"] == "learned_ycbcr420_crc_64x64")
    bad = _tamper_latent((d / s["file"]).read_bytes())
    (d / s["file"]).write_bytes(bad)
    s["bitstream_sha256"] = hashlib.sha256(bad).hexdigest()
    s["trace_sha256"] = hashlib.sha256(trace_of(bad).encode()).hexdigest()
    s["md5"] = decode_internal(bad)[0]
    (d / "manifest.json").write_text(json.dumps(m))
    out = tmp_path / "j.xml"
    assert run(["--suite", str(d), "-k", s["name"], "--junit", str(out)]) == 1
    f = etree.parse(str(out)).getroot().find("testsuite/testcase/failure")
    assert f.get("type") == "LatentHashMismatch" and "latent of layers 0..0" in f.get("message")


def _junit_schema():
    etree = pytest.importorskip("lxml.etree")
    return etree, etree.XMLSchema(etree.parse(os.path.join(ROOT, "conformance", "junit.xsd")))


def test_junit_xml(tmp_path, capsys):
    """--junit: one <testcase> per stream, valid against the JUnit schema (conformance/junit.xsd);
    a hash mismatch is a <failure> with the expected and the decoded MD5, a bitstream error in a
    positive stream an <error> naming the element and clause, a negative stream that raises another
    error than the manifest's a <failure>."""
    import hashlib
    etree, schema = _junit_schema()
    out = tmp_path / "ok.xml"
    assert run(["-k", "pcm", "--junit", str(out)]) == 0
    doc = etree.parse(str(out))
    schema.assertValid(doc)
    suite = doc.getroot().find("testsuite")
    cases = {tc.get("name"): tc for tc in suite.iter("testcase")}
    assert [suite.get(k) for k in ("tests", "failures", "errors", "skipped")] == [str(len(cases)), "0", "0", "0"]
    assert cases["pcm_rgb444_8bit_13x7"].get("classname") == "conformance.pcm"
    neg = cases["neg_pcm_without_ph"]
    assert neg.get("classname") == "conformance.negative" and len(neg.findall("failure") + neg.findall("error")) == 0
    assert "unit_type (8.1)" in neg.findtext("system-out")
    assert all(float(tc.get("time")) >= 0 for tc in cases.values())

    d = tmp_path / "suite"
    shutil.copytree(suite_dir(), d)
    m = json.loads((d / "manifest.json").read_text())
    pcm = [s for s in m["streams"] if s["name"].startswith("pcm_")]
    right = pcm[0]["md5"][0][0]
    pcm[0]["md5"][0][0] = "0" * 32                                        # a hash mismatch
    bad = next(s for s in m["negative"] if s["name"] == "neg_pcm_without_ph")
    data = (d / bad["file"]).read_bytes()
    (d / pcm[1]["file"]).write_bytes(data)                                # a positive stream that is not
    pcm[1]["bitstream_sha256"] = hashlib.sha256(data).hexdigest()
    bad["element"] = "ph_pic_order_cnt"                                   # the wrong error expected
    (d / "manifest.json").write_text(json.dumps(m))
    out = tmp_path / "bad.xml"
    assert run(["--suite", str(d), "-k", "pcm", "--junit", str(out)]) == 3
    doc = etree.parse(str(out))
    schema.assertValid(doc)
    suite = doc.getroot().find("testsuite")
    assert [suite.get(k) for k in ("failures", "errors")] == ["2", "1"]
    assert doc.getroot().get("failures") == "2" and doc.getroot().get("errors") == "1"
    cases = {tc.get("name"): tc for tc in suite.iter("testcase")}
    f = cases[pcm[0]["name"]].find("failure")
    assert f.get("type") == "HashMismatch" and "0" * 32 in f.get("message") and right in f.get("message")
    assert "picture 0" in f.text
    e = cases[pcm[1]["name"]].find("error")
    assert e.get("type") == "BitstreamError" and "unit_type" in e.get("message") and "8.1" in e.get("message")
    f = cases["neg_pcm_without_ph"].find("failure")
    assert f.get("type") == "WrongBitstreamError" and "unit_type" in f.get("message")
    assert "ph_pic_order_cnt" in f.get("message")
    out = capsys.readouterr().out
    assert "JUnit XML:" in out and "3 failed" in out


def test_junit_xml_escapes_and_schema_rejects(tmp_path):
    from refsw.conformance import Case, write_junit
    etree, schema = _junit_schema()
    c = Case("odd <name> & \"quotes\"", "pcm", "Main Intra", 1)
    try:
        raise RuntimeError("ffmpeg said \x01 <b>&amp;</b>")
    except RuntimeError as e:
        c.crash(e)
    path = tmp_path / "j.xml"
    write_junit(str(path), [c], elapsed=0.5, started=__import__("time").localtime(), properties={"k": "v\x02"})
    doc = etree.parse(str(path))
    schema.assertValid(doc)
    tc = doc.getroot().find("testsuite/testcase")
    assert tc.get("name") == c.name and "<b>&amp;</b>" in tc.find("error").get("message")
    assert tc.find("error").get("type") == "RuntimeError" and "Traceback" in tc.find("error").text
    del tc.attrib["name"]                                   # the schema does check
    assert not schema.validate(doc)
    tc.set("name", "x")
    doc.getroot().find("testsuite").set("tests", "many")
    assert not schema.validate(doc)
