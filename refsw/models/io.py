"""Non-pickle weight files (.npz) for the learned models.

Layout of an exported ``.npz`` (all plain numeric arrays, load with
``numpy.load(path, allow_pickle=False)``):

* ``config_json``       uint8  UTF-8 JSON of the model config (IntraConfig.to_dict()).
* ``model.<param>``     float16 every tensor of the torch ``state_dict``
                        (e.g. ``model.g_s.0.weight``); stored as float16 to keep the
                        file small, loaded as float32.  The stored values ARE the
                        model (evaluation always uses the reloaded file).
* ``derived.*``         tables derived from the weights for the codec:
    - ``derived.log_gain_enc_q``  (64, M) float64  ln gE for every quality index 0..63
    - ``derived.gain_dec_q``      (64, M) float64  gD
    - ``derived.zgain_enc_q``     (64, Z) float64  zE
    - ``derived.zgain_dec_q``     (64, Z) float64  zD
    - ``derived.z_cdf``           (Z, 2*z_support+2) int32 integer CDF of z (precision bits
                                  in the config), symbol v in [-S, S] at column v+S.
    - ``derived.scale_table``     (64,) float64 normative Gaussian scales s_k.
* ``meta.step``, ``meta.train_seconds`` int64 / float64 scalars.
* ``meta.trained_lambdas`` and ``trained.<table>`` (optional, written by
  ``refsw.train.remap_points``): the lambdas the model was trained at and its
  per-point gain tables there (float16), so that training can resume from the
  shipped, remapped file at the trained points exactly (``train_intra --init-npz``).
"""
from __future__ import annotations

import io
import json
import os
from typing import Optional

import numpy as np
import torch

from ..npzfile import NpzArrays, read_npz  # noqa: F401  (read_npz: part of this module's API)
from .entropy_models import scale_table


def export_npz(model, path: str, meta: Optional[dict] = None, extra: Optional[dict] = None) -> None:
    """Write ``model`` to ``path``; ``meta`` values go to ``meta.<key>``, ``extra``
    arrays are stored under their own keys (e.g. ``trained.<table>``)."""
    cfg = model.cfg
    arrays = {}
    arrays["config_json"] = np.frombuffer(json.dumps(cfg.to_dict(), sort_keys=True).encode(), dtype=np.uint8)
    for k, v in model.state_dict().items():
        arrays["model." + k] = v.detach().cpu().to(torch.float16).numpy()
    model = _rounded_copy(model)
    with torch.no_grad():
        q = torch.arange(cfg.num_quality, dtype=torch.float64)
        arrays["derived.log_gain_enc_q"] = model.interp(model.log_gain_enc.double(), q).numpy()
        arrays["derived.gain_dec_q"] = model.interp(model.log_gain_dec.double(), q).exp().numpy()
        arrays["derived.zgain_enc_q"] = model.interp(model.log_zgain_enc.double(), q).exp().numpy()
        arrays["derived.zgain_dec_q"] = model.interp(model.log_zgain_dec.double(), q).exp().numpy()
    arrays["derived.z_cdf"] = model.z_prior.integer_cdf(cfg.z_support, cfg.z_cdf_precision)
    arrays["derived.scale_table"] = scale_table()
    for k, v in (meta or {}).items():
        arrays["meta." + k] = np.asarray(v)
    for k, v in (extra or {}).items():
        if k in arrays:
            raise ValueError(f"export_npz: extra key {k!r} collides with a model key")
        arrays[k] = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp.npz"
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)


def _rounded_copy(model):
    """Copy of the model with parameters rounded to float16 (the stored values)."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        for t in m.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.to(torch.float16).to(t.dtype))
    return m


def carried_over(arrays: dict) -> tuple[dict, dict]:
    """What a weight file derived from ``arrays`` (a :func:`read_npz` result) keeps:
    its ``meta.*`` values (keys without the prefix, for ``export_npz(meta=)``) and its
    ``trained.*`` arrays (for ``export_npz(extra=)``)."""
    meta = {k[5:]: v for k, v in arrays.items() if k.startswith("meta.")}
    extra = {k: v for k, v in arrays.items() if k.startswith("trained.")}
    return meta, extra


def load_npz(path: str, model_cls=None):
    """Build the model described by the file and load its weights (float32)."""
    return model_from_arrays(read_npz(path), model_cls)


def model_from_arrays(arrays: dict, model_cls=None):
    """:func:`load_npz` on the arrays of a :func:`read_npz` result."""
    from .intra import IntraCodec, IntraConfig

    cfg = IntraConfig.from_dict(json.loads(arrays["config_json"].tobytes().decode()))
    model = (model_cls or IntraCodec)(cfg)
    sd = {k[len("model."):]: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in arrays.items() if k.startswith("model.")}
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model
