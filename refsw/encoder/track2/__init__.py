"""MPEG-VCM Track 2 encoding (non-normative): ROI detection and background
simplification, resampling and bit-depth truncation before an inner HEVC
(x265) or VVC (vvenc) encoder.  Decoding: refsw.decoder.track2."""
from . import codec  # noqa: F401  (registers SEQUENCE_ENCODERS["inner"])
