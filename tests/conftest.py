"""Shared test helpers: a small random learned codec registered as model 1."""
import contextlib
from dataclasses import replace

import numpy as np
import torch

from refsw.models import registry
from refsw.models.io import export_npz
from refsw.nn import convert
from refsw.picture import Picture
import refsw.decoder.learned_intra as li
import refsw.encoder.learned_intra as eli
from refsw.decoder import model_data


@contextlib.contextmanager
def random_codec(d, model_id=1):
    """Register a randomly initialised, integerised model ``model_id`` (weights in folder d)."""
    torch.manual_seed(0)
    m = registry.build_model(model_id)
    if m.ctx is not None:
        with torch.no_grad():   # a context that acts: random last layer (it starts at zero)
            m.ctx[-1].weight.normal_(0, 0.02)
            m.ctx[-1].weight.mul_(m.ctx[-1].mask)
    name = f"m{model_id}"
    export_npz(m, str(d / f"{name}.npz"))
    np.savez(d / f"{name}_int.npz", **convert.integerize(m, [torch.rand(1, 3, 64, 64)], qualities=[0, 63]))
    old = registry.REGISTRY[model_id]
    old_data = model_data.MODEL_DATA.get(model_id)
    registry.REGISTRY[model_id] = replace(old, weights=str(d / f"{name}.npz"))
    model_data.MODEL_DATA[model_id] = (replace(old_data, int_file=str(d / f"{name}_int.npz"), int_sha256=None)
                                       if old_data else model_data.ModelData(model_id, old.name,
                                                                             str(d / f"{name}_int.npz"), None))
    li.int_model.cache_clear()
    eli.float_model.cache_clear()
    try:
        yield d / f"{name}_int.npz"
    finally:
        registry.REGISTRY[model_id] = old
        if old_data:
            model_data.MODEL_DATA[model_id] = old_data
        else:
            del model_data.MODEL_DATA[model_id]
        li.int_model.cache_clear()
        eli.float_model.cache_clear()


def synthetic_rgb(w, h, seed=1):
    """A ramp with noise: 8-bit RGB test content."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :] * np.linspace(0.3, 1, h)[:, None]
    planes = [np.clip(base + rng.normal(0, 20, (h, w)) + 30 * c, 0, 255).astype(np.uint16) for c in range(3)]
    return Picture(planes, "444", 8, "rgb")


def tiny_train_args(tmp_path, lambdas="0.01,0.1"):
    """train_intra arguments for a few steps on two random 96x96 pictures in tmp_path/train
    (output in tmp_path/run, weights tmp_path/w.npz, card tmp_path/w.md)."""
    from PIL import Image
    data = tmp_path / "train"
    data.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(data / f"im{i}.png")
    return ["--data", str(data), "--dev", "", "--out", str(tmp_path / "run"), "--export", str(tmp_path / "w.npz"),
            "--card", str(tmp_path / "w.md"), "--batch", "2", "--crop", "64", "--no-eval", "--lambdas", lambdas]
