"""The conformance suite: runner, reproducibility, external decoders, coverage."""
import json
import os
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
    run(["--coverage"])
    out = capsys.readouterr().out
    assert "syntax coverage:" in out
    spec = spec_elements()
    assert "sps_profile_idc" in spec and "ph_quality_idx" in spec and spec["sps_pcm_enabled_flag"] == "flag"
    cov = coverage({"x": "        48  sps_profile_idc   u(8)   = 1\n        0  sps_pcm_enabled_flag u(1) = 1\n"})
    got = dict(cov["items"])
    assert got["sps_profile_idc"] and got["sps_pcm_enabled_flag=1"] and not got["sps_pcm_enabled_flag=0"]


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
