"""Decoding-process probe (informative): which branches of the decoding process
and which filter phases a run of the decoder reaches.

``COUNTER`` is None by default, and every probe point in the decoder reads

    if probe.COUNTER is not None:
        probe.COUNTER[key] += 1

so that with coverage off a probe point costs one attribute lookup and a
comparison.  A tool (``refsw-conformance --coverage``) sets ``COUNTER`` to a
``collections.Counter``, decodes, and compares the keys it collected with
:data:`BRANCHES` and :data:`PHASES`.  Nothing here changes a decoded value, and
the decoder imports no coverage or conformance code.
"""
from __future__ import annotations

#: the counter of reached keys; None: the probe is off
COUNTER = None

#: every branch a probe point reports: (process, case) -> clause
BRANCHES: dict[tuple[str, str], str] = {
    ("coding mode", "PCM"): "8.3",
    ("coding mode", "LEARNED"): "8.2",
    ("coding mode", "INNER"): "8.4",
    ("output cropping", "none"): "8.5",
    ("output cropping", "conformance window"): "8.5",
    ("picture hash", "MD5"): "8.6",
    ("picture hash", "CRC-32"): "8.6",
    ("picture hash", "no DPH unit of HighestLayer"): "8.6",
    ("learned colour format", "RGB 4:4:4"): "10.7",
    ("learned colour format", "YCbCr 4:4:4"): "10.7",
    ("learned colour format", "YCbCr 4:2:0"): "10.7",
    ("latent layers of the SPS", "1"): "10.1",
    ("latent layers of the SPS", "2"): "10.1",
    ("latent layers of a picture", "all"): "8.2",
    ("latent layers of a picture", "upper layers absent"): "8.2",
    ("latent decoding passes", "1 (no spatial context)"): "10.4",
    ("latent decoding passes", "2 (checkerboard context)"): "10.9",
    ("residual enhancement layer (11)", "absent"): "8.2",
    ("residual enhancement layer (11)", "present"): "11",
    ("residual colour domain (11.2)", "YCoCg-R (RGB)"): "11.2",
    ("residual colour domain (11.2)", "YCbCr components"): "11.2",
    ("task branch", "face"): "10.8",
    ("latent hash (task mode)", "MD5"): "8.6",
    ("latent hash (task mode)", "CRC-32"): "8.6",
    ("latent hash (task mode)", "absent"): "8.6",
    ("inner codec", "HEVC"): "T2.2",
    ("inner codec", "VVC"): "T2.2",
    ("T2.3 spatial resampling", "on"): "T2.3",
    ("T2.3 spatial resampling", "off"): "T2.3",
    ("T2.4 temporal resampling", "on"): "T2.4",
    ("T2.4 temporal resampling", "off"): "T2.4",
    ("T2.4 dropped picture", "weighted average, gap 2"): "T2.4",
    ("T2.4 dropped picture", "weighted average, gap >= 3"): "T2.4",
    ("T2.4 dropped picture", "repetition"): "T2.4",
    ("T2.5 bit depth", "BitDepthShift > 0"): "T2.5",
    ("T2.5 bit depth", "BitDepthShift = 0"): "T2.5",
    ("T2.5 bit depth", "d > 0 (InnerBitDepth > CodedBitDepth)"): "T2.5",
    ("T2.5 bit depth", "d = 0"): "T2.5",
    ("T2.6 post filter", "luma on"): "T2.6",
    ("T2.6 post filter", "luma off"): "T2.6",
    ("T2.6 post filter", "chroma on"): "T2.6",
    ("T2.6 post filter", "chroma off"): "T2.6",
    ("T2.7 regions of interest", "signalled in the picture"): "T2.7",
    ("T2.7 regions of interest", "from the previous picture"): "T2.7",
    ("T2.7 regions of interest", "none (rm_num_roi 0)"): "T2.7",
}

#: the filter phases of T2.3: (table, phase)
PHASES: list[tuple[str, int]] = [("T2.3 luma phase", p) for p in range(16)] + \
                                [("T2.3 chroma phase", p) for p in range(32)]
