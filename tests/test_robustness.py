"""Corrupted conformance streams (refsw-conformance --mutations): every
corruption decodes (hash match, mismatch or absent) or raises BitstreamError;
nothing else escapes, and nothing hangs."""
import os

import pytest

from refsw.conformance import mutation_campaign, run, suite_dir

STREAMS = ["pcm_yuv420_10bit_17x9", "syntax_misc_20x12", "learned_q36_70x45", "learned_task_face_256x192",
           "inner_hevc_ld_all_tools", "inner_vvc_ra"]


@pytest.mark.parametrize("name", STREAMS)
def test_mutated_streams_fail_cleanly(name):
    with open(os.path.join(suite_dir(), "streams", name + ".bin"), "rb") as f:
        data = f.read()
    for task in (None, "face") if "task" in name else (None,):
        counts, failures = mutation_campaign(name, data, 40, task=task)
        assert not failures, failures
        assert counts["BitstreamError"] > 0 and sum(counts.values()) == 40


def test_campaign_reports_an_escaping_error(monkeypatch, capsys):
    """A decoder bug that escapes as another exception is counted as a failure."""
    from refsw import decoder

    def broken(self, data):
        raise IndexError("deep inside")
    monkeypatch.setattr(decoder.Decoder, "decode", broken)
    counts, failures = mutation_campaign("x", bytes(16), 3)
    assert counts["other"] == 3 and len(failures) == 3 and "IndexError" in failures[0]


def test_cli_option(capsys):
    assert run(["-k", "pcm_yuv400", "--mutations", "5"]) == 0
    assert "mutations: 5 corrupted streams" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run(["--mutations", "5", "--decoder", "x {in} {out}"])
