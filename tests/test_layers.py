"""Layering (README "What refsw is"): the decoder holds only normative code."""
import json
import os
import subprocess
import sys

from refsw import layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STREAMS = os.path.join(ROOT, "conformance", "streams")

FORBIDDEN = ("refsw.encoder", "refsw.models", "refsw.train", "refsw.nn", "refsw.ctc", "refsw.tasks", "torch")

_PROBE = r"""
import json, sys
from refsw.apps.decode import main
for args in ARGS:
    try:
        main(args)
    except SystemExit as e:
        assert e.code == 0, (args, e.code)
print(json.dumps(sorted(sys.modules)))
"""


def _loaded_after(args):
    code = _PROBE.replace("ARGS", repr(args))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_decoder_loads_no_encoder_training_float_model_or_torch(tmp_path):
    """A fresh interpreter decodes a PCM, a learned, a layered and an INNER stream and runs a
    task branch: no encoder, training, float-model, CTC or task-network module is loaded, nor torch."""
    out = str(tmp_path / "o")
    args = [["-b", os.path.join(STREAMS, "pcm_rgb444_8bit_13x7.bin"), "-o", out + ".png"],
            ["-b", os.path.join(STREAMS, "learned_q36_70x45.bin"), "-o", out + ".png", "--threads", "2"],
            ["-b", os.path.join(STREAMS, "learned_base_layer_70x45.bin"), "-o", out + ".png"],
            ["-b", os.path.join(STREAMS, "learned_task_face_256x192.bin"), "--Task", "face", "-o", out + ".json"],
            ["-b", os.path.join(STREAMS, "inner_hevc_spatial.bin"), "-o", out + ".yuv"]]
    loaded = _loaded_after(args)
    bad = [m for m in loaded if m.startswith(FORBIDDEN)]
    assert not bad, bad
    assert "refsw.decoder.learned_intra" in loaded and "refsw.decoder.track2.sequence" in loaded


def test_layering_has_no_violation_circle_or_private_import(capsys):
    assert layers.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert "refsw.decoder" in out and "0 violations, 0 circles, 0 private imports" in out
    graph, private = layers.imports(layers.modules())
    assert not private
    # the decoder package imports nothing but syntax, the common modules and itself
    for mod, deps in graph.items():
        if mod.startswith("refsw.decoder"):
            assert all(layers.layer_of(d) in ("syntax", "common", "decoder") for d in deps), (mod, deps)


def test_checks_find_what_they_look_for():
    g = {"refsw.decoder.a": {"refsw.encoder.b"}, "refsw.encoder.b": {"refsw.decoder.a"}, "refsw.picture": set()}
    assert layers.circles(g) == [["refsw.decoder.a", "refsw.encoder.b"]]
    assert layers.violations(g) == [("refsw.decoder.a", "refsw.encoder.b", "decoder imports encoder")]
    assert layers.circles({"a": {"b"}, "b": set()}) == []
