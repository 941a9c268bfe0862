"""Coding tools: importing this package registers every picture/sequence
encoder and decoder under the coding mode it implements."""
from . import learned_intra  # noqa: F401
from . import track2  # noqa: F401
