"""MPEG-VCM Track 2 style coding around an inner video codec (coding mode
"inner", Machine Video profile): ROI-based background simplification,
spatial and temporal resampling, bit-depth truncation and a post filter
around HEVC (x265) or VVC (vvenc).  Specification: docs/spec/track2.md."""
from . import codec  # noqa: F401  (registers SEQUENCE_ENCODERS["inner"] and the INNER decoder)
