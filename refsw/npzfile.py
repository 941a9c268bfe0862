"""Reading .npz files without pickle (model weights and integer model data)."""
from __future__ import annotations

import zipfile

import numpy as np


class NpzArrays(dict):
    """The arrays of an .npz file; a missing array is a ValueError naming the file."""

    def __init__(self, path: str, arrays: dict):
        super().__init__(arrays)
        self.path = path

    def __missing__(self, key):
        raise ValueError(f"{self.path}: no array {key!r}")


def read_npz(path: str) -> NpzArrays:
    """All arrays of an .npz file (no pickle); a file that is not one is a ValueError naming it."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return NpzArrays(path, {k: f[k] for k in f.files})
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
