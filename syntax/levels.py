"""Annex A: profiles and levels."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import BitstreamError


@dataclass(frozen=True)
class Level:
    level_idc: int
    name: str
    MaxLumaPs: int        # maximum luma picture size in samples
    MaxUnitBytes: int     # maximum unit_length
    MaxFeatureElements: int  # maximum samples of one feature tensor
    MaxRoi: int           # maximum number of ROI rectangles per picture

    @property
    def MaxDim(self) -> int:
        """Maximum picture width or height: Sqrt(MaxLumaPs * 8)."""
        return int((self.MaxLumaPs * 8) ** 0.5)


_MiB = 1 << 20
LEVELS: dict[int, Level] = {
    lv.level_idc: lv for lv in [
        Level(10, "1", 36864, 1 * _MiB, 16 * 36864, 16),
        Level(20, "2", 122880, 4 * _MiB, 16 * 122880, 32),
        Level(30, "3", 552960, 16 * _MiB, 16 * 552960, 64),
        Level(40, "4", 2228224, 64 * _MiB, 16 * 2228224, 128),
        Level(50, "5", 8912896, 256 * _MiB, 16 * 8912896, 256),
        Level(60, "6", 35651584, 1024 * _MiB, 16 * 35651584, 256),
    ]
}

# Bound on unit_length before any SPS has been decoded, and of every SPS unit (5.1).
MAX_UNIT_BYTES_NO_SPS = 64 * 1024


def level_for(level_idc: int) -> Level:
    try:
        return LEVELS[level_idc]
    except KeyError:
        raise BitstreamError(f"unknown level_idc {level_idc}; known: {sorted(LEVELS)}",
                             element="sps_level_idc", clause="A.3")


def min_level(width: int, height: int) -> Level:
    """Lowest level whose picture-size limits admit width x height."""
    for lv in LEVELS.values():
        if width * height <= lv.MaxLumaPs and max(width, height) <= lv.MaxDim:
            return lv
    raise ValueError(f"picture size {width}x{height} exceeds every level (max {LEVELS[60].MaxDim})")


@dataclass(frozen=True)
class Profile:
    profile_idc: int
    name: str
    tools: frozenset  # names of the sps_*_enabled_flag that may be 1


PROFILES: dict[int, Profile] = {
    p.profile_idc: p for p in [
        Profile(1, "Main Intra", frozenset({"sps_pcm_enabled_flag", "sps_learned_intra_enabled_flag"})),
        Profile(2, "Machine Video", frozenset({
            "sps_pcm_enabled_flag", "sps_inner_codec_enabled_flag", "sps_roi_enabled_flag",
            "sps_spatial_resampling_enabled_flag", "sps_temporal_resampling_enabled_flag",
            "sps_bit_depth_truncation_enabled_flag", "sps_post_filter_enabled_flag"})),
        Profile(3, "Feature", frozenset({"sps_pcm_enabled_flag", "sps_feature_coding_enabled_flag"})),
    ]
}

PROFILE_NAMES = {p.name.lower().replace(" ", "_"): p.profile_idc for p in PROFILES.values()}
