"""The reference encoder (non-normative, as EncoderLib of HM/VTM).  It may
import the decoder (refsw.decoder), never the reverse.

    core           the Encoder, SPS construction, picture hashes
    learned_intra  learned intra encoding and the --TargetBpp rate search
    latent_rdo     the latent RD search (LatentRefine)
    track2/        Track 2: ROI detection and simplification, resampling,
                   bit-depth truncation, inner HEVC/VVC encoding

Importing the package registers the encoder of every coding mode.
"""
from .core import (CODED_SIZE_ALIGN, CODING_MODE_TOOLS, PICTURE_ENCODERS, SEQUENCE_ENCODERS, Encoder, EncoderError,
                   build_sps, hash_units, layer_reconstructions, pad_picture, register_picture_encoder)
from . import learned_intra  # noqa: F401  (registers the coding modes)
from . import track2  # noqa: F401

__all__ = ["CODED_SIZE_ALIGN", "CODING_MODE_TOOLS", "PICTURE_ENCODERS", "SEQUENCE_ENCODERS", "Encoder",
           "EncoderError", "build_sps", "hash_units", "layer_reconstructions", "pad_picture",
           "register_picture_encoder"]
