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
