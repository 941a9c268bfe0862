"""Clause 8.3: PCM picture decoding: the samples are copied."""
from __future__ import annotations

import numpy as np

from syntax import hls

from ..picture import Picture
from .core import CodedPicture, register_picture_decoder, sps_picture_format, unit_error


@register_picture_decoder(hls.PCM_MODE)
def decode_pcm_picture(dec, cp: CodedPicture) -> Picture:
    """Clause 8.3: PCM picture decoding: samples are copied."""
    pcm = cp.units_of(hls.UT_PCM)
    if len(pcm) != 1:
        raise unit_error(f"a picture with ph_pic_coding_mode equal to 0 has {len(pcm)} PCM units", cp.ph_unit,
                         element="ph_pic_coding_mode", clause="8.3",
                         shall="A picture with ph_pic_coding_mode equal to 0 shall contain exactly one PCM unit")
    cf, bd, cs = sps_picture_format(cp.sps)
    planes = [np.asarray(p, dtype=np.uint16) for p in pcm[0].payload.pcm_sample]
    return Picture(planes, cf, bd, cs)
