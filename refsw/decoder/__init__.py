"""The normative decoder (as DecoderLib of HM/VTM): everything a decoder does
is here, one module per process of the specification, and nothing here
imports an encoder, a training script, a float model, the CTC or a task
network (tests/test_layers.py checks it).

    core           8.1  units -> coded pictures, hash check, output
    pcm            8.3  PCM pictures
    entropy/       9    the multi-lane rANS coder and its integer tables
    intnet         10.2 the integer network engine (numpy; torch only on a GPU)
    model_data     10.6 integer model data by sps_model_id, identified by SHA-256
    learned_intra  8.2, 10.1-10.7 learned intra pictures
    task_branch    10.8 task branches on the base latent layer
    track2/        8.4, Track 2 (T2): inner decoding and restoration

Importing the package registers the decoding process of every coding mode.
"""
from .core import (CHROMA_FORMAT_NAMES, PICTURE_DECODERS, SEQUENCE_DECODERS, TASK_DECODERS, CodedPicture,
                   DecodedPicture, Decoder, crop_to_output, register_picture_decoder, sps_picture_format,
                   unit_error)
from . import pcm  # noqa: F401  (registers the coding modes)
from . import learned_intra  # noqa: F401
from . import task_branch  # noqa: F401
from .track2 import sequence  # noqa: F401

__all__ = ["CHROMA_FORMAT_NAMES", "PICTURE_DECODERS", "SEQUENCE_DECODERS", "TASK_DECODERS", "CodedPicture",
           "DecodedPicture", "Decoder", "crop_to_output", "register_picture_decoder", "sps_picture_format",
           "unit_error"]
