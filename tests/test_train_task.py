"""refsw.train.train_task --eval-only (the release script's choice between face branches)."""
import numpy as np
import pytest
import torch

from refsw.models.task_face import FaceHead, FaceHeadConfig
from refsw.models.task_io import save_branch
from refsw.tasks.face_data import save_npz
from refsw.train import train_task


@pytest.fixture()
def eval_set(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (2, 64, 128, 3), dtype=np.uint8)
    boxes = [np.array([[10, 10, 40, 44, 0.99], [70, 5, 90, 30, 0.5]], np.float32), np.zeros((0, 5), np.float32)]
    path = tmp_path / "eval.npz"
    save_npz(str(path), dict(images=imgs, boxes=boxes, paste_boxes=[np.zeros((0, 4))] * 2,
                             paste_sources=[[], []], split="eval", seed=0, size=(128, 64)))
    return str(path)


def _branch(tmp_path, name, channels):
    torch.manual_seed(channels)
    p = tmp_path / f"{name}.npz"
    save_branch(FaceHead(FaceHeadConfig(channels=channels, depth=1)), str(p))
    return str(p)


def test_eval_only_runs_and_picks_the_higher_mean(tmp_path, eval_set, capsys, monkeypatch):
    a, b = _branch(tmp_path, "a", 8), _branch(tmp_path, "b", 12)
    assert train_task.main(["--eval-only", a, b, "--eval", eval_set]) == 0      # the real evaluation
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{a}: AP@0.5 q0:") and "(mean " in out[0] and out[1].startswith(f"{b}: AP@0.5")
    assert out[-1] in (f"best: {a}", f"best: {b}")
    seen = []

    def fake(head, codec, data, qs, base):
        seen.append((len(data["gt"][0]), tuple(qs)))    # gt at --gt-score 0.9: one box in picture 0
        v = {8: 0.5, 12: 0.7}[head.cfg.channels]
        return {q: v for q in qs}
    monkeypatch.setattr(train_task, "evaluate", fake)
    train_task.main(["--eval-only", a, b, "--eval", eval_set])
    assert capsys.readouterr().out.splitlines()[-1] == f"best: {b}"
    assert seen == [(1, train_task.EVAL_QS)] * 2
    train_task.main(["--eval-only", b, a, "--eval", eval_set])
    assert capsys.readouterr().out.splitlines()[-1] == f"best: {b}"
    train_task.main(["--eval-only", a, a, "--eval", eval_set])                # tie: the first
    assert capsys.readouterr().out.splitlines()[-1] == f"best: {a}"


def test_eval_only_bad_file_is_named(tmp_path, eval_set, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    bad_zip = tmp_path / "bad_zip.npz"
    bad_zip.write_bytes(b"PK\x03\x04" + b"\0" * 40)      # a zip header, then garbage
    for path, msg in ((str(tmp_path / "missing.npz"), "no such file"), (str(bad), "not a task-branch weight file"),
                      (str(bad_zip), "not a task-branch weight file")):
        with pytest.raises(SystemExit) as e:
            train_task.main(["--eval-only", path, "--eval", eval_set])
        assert e.value.code == 2
        assert f"--eval-only {path!r}: {msg}" in capsys.readouterr().err
