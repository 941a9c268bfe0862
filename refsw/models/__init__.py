"""Learned models (float reference / training side)."""
from .intra import IntraCodec, IntraConfig  # noqa: F401
from .registry import REGISTRY, build_model, get_entry, load_model  # noqa: F401
