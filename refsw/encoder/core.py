"""Reference encoder (non-normative): builds the units of a refsw bitstream;
the coding modes register their picture or sequence encoders here."""
from __future__ import annotations

import numpy as np

from syntax import hls
from syntax.levels import LEVELS, PROFILE_NAMES, PROFILES, min_level
from syntax.rw import Struct, Trace
from syntax.units import BitstreamWriter

from ..decoder.core import CHROMA_FORMAT_NAMES, crop_to_output, latent_hash
from ..picture import Picture, picture_crc32, picture_md5


def entropy_substream(subs) -> Struct:
    """The entropy_substream() structure (7.2) of coded substreams."""
    return Struct(es_num_lanes_minus1=subs.num_lanes - 1, es_lane_data_size=len(subs.lane_data),
                  es_escape_data_size=len(subs.escape_data), es_lane_data=subs.lane_data,
                  es_escape_data=subs.escape_data)


CHROMA_IDC = {v: k for k, v in CHROMA_FORMAT_NAMES.items()}

# picture encoders by coding mode name:
#   f(encoder, coded_pic, sps, poc) -> (list of (unit_type, payload, layer), reconstruction)
PICTURE_ENCODERS: dict[str, callable] = {}

# sequence encoders by coding mode name (e.g. the inner codec of Track 2):
#   f(encoder, pics, writer) -> list of output reconstructions; writes every unit
#   itself (SPS, metadata, PH, payloads, DPH) through ``writer``.
SEQUENCE_ENCODERS: dict[str, callable] = {}


def layer_reconstructions(units, recon) -> dict:
    """{unit_layer_id: reconstruction} of a coded picture: a picture encoder
    returns either one reconstruction (of its highest layer) or such a dict."""
    return recon if isinstance(recon, dict) else {max(layer for _, _, layer in units): recon}


#: cfg PictureHash -> dph_hash_type (7.8); 0: no DPH unit
PICTURE_HASH_TYPES = {1: hls.DPH_MD5, 2: hls.DPH_CRC32}


# coding mode name -> f(units, sps, layers) -> {layer: (y_hat, c_end)}: the latent decoded from
# the picture's units of layers 0..layer (7.8, LatentHash), registered by the learned mode
LATENT_DECODERS: dict[str, callable] = {}


def dph_payload(out: Picture, picture_hash: int = 1, latent=None) -> Struct:
    """decoded_picture_hash() of an output (cropped) picture, for the cfg value
    PictureHash (1 MD5, 2 CRC-32); latent: (y_hat, c_end) of a learned picture,
    whose hash the unit then carries too."""
    hash_type = PICTURE_HASH_TYPES[picture_hash]
    if hash_type == hls.DPH_MD5:
        dph = Struct(dph_hash_type=hash_type, dph_picture_md5=picture_md5(out))
    else:
        dph = Struct(dph_hash_type=hash_type, dph_picture_crc=picture_crc32(out))
    if latent is not None:
        setattr(dph, "dph_latent_md5" if hash_type == hls.DPH_MD5 else "dph_latent_crc",
                latent_hash(latent[0], latent[1], hash_type))
    return dph


def hash_units(recons: dict, sps, picture_hash: int = 1, latents: dict | None = None) -> list:
    """The DPH units of a picture, one per layer reconstruction (7.8), as
    (unit_type, payload, unit_layer_id); picture_hash: the cfg value PictureHash;
    latents: {layer: (y_hat, c_end)} for the latent hashes (LatentHash)."""
    return [(hls.UT_DPH, dph_payload(crop_to_output(recons[layer], sps), picture_hash,
                                     (latents or {}).get(layer)), layer)
            for layer in sorted(recons)]


class EncoderError(ValueError):
    """A setting or input the encoder cannot code (names the option)."""


def register_picture_encoder(name: str):
    def deco(fn):
        PICTURE_ENCODERS[name] = fn
        return fn
    return deco


def pad_picture(pic: Picture, width: int, height: int) -> Picture:
    """Pad by edge replication to the coded size (the encoder's choice)."""
    sw, sh = (2, 2) if pic.chroma_format == "420" else (1, 1)
    planes = []
    for c, p in enumerate(pic.planes):
        w, h = (width, height) if c == 0 else ((width + sw - 1) // sw, (height + sh - 1) // sh)
        planes.append(np.pad(p, ((0, h - p.shape[0]), (0, w - p.shape[1])), mode="edge"))
    return Picture(planes, pic.chroma_format, pic.bit_depth, pic.colour_space)


def build_sps(pic: Picture, cfg, *, coded_width=None, coded_height=None, tools=None) -> Struct:
    """SPS for pictures of the format of ``pic`` under settings ``cfg``."""
    profile = cfg.Profile
    if profile not in PROFILE_NAMES:
        raise EncoderError(f"Profile: unknown profile {profile!r}; known: {', '.join(PROFILE_NAMES)}")
    profile_idc = PROFILE_NAMES[profile]
    cw = coded_width or pic.width
    ch = coded_height or pic.height
    if cfg.Level in ("auto", "", None):
        try:
            level_idc = min_level(cw, ch).level_idc
        except ValueError as e:
            raise EncoderError(str(e))
    else:
        try:
            level_idc = int(round(float(cfg.Level) * 10))
        except ValueError:
            level_idc = -1
        if level_idc not in LEVELS:
            raise EncoderError(f"Level: unknown level {cfg.Level!r}; known: auto, "
                               + ", ".join(lv.name for lv in LEVELS.values()))
    right = cw - pic.width
    bottom = ch - pic.height
    sps = Struct(
        sps_profile_idc=profile_idc, sps_level_idc=level_idc,
        sps_pic_width_in_luma_samples=cw, sps_pic_height_in_luma_samples=ch,
        sps_chroma_format_idc=CHROMA_IDC[pic.chroma_format],
        sps_colour_space_idc=1 if pic.colour_space == "rgb" else 0,
        sps_bit_depth_minus8=pic.bit_depth - 8,
        sps_conformance_window_flag=int(bool(right or bottom)),
        sps_conf_win_left_offset=0, sps_conf_win_right_offset=right,
        sps_conf_win_top_offset=0, sps_conf_win_bottom_offset=bottom,
        sps_timing_info_present_flag=0,
        sps_pcm_enabled_flag=0, sps_learned_intra_enabled_flag=0, sps_num_latent_layers_minus1=0,
        sps_inner_codec_enabled_flag=0, sps_feature_coding_enabled_flag=0, sps_roi_enabled_flag=0,
        sps_spatial_resampling_enabled_flag=0, sps_temporal_resampling_enabled_flag=0,
        sps_bit_depth_truncation_enabled_flag=0, sps_post_filter_enabled_flag=0,
        sps_extension_flag=0,
    )
    fr = getattr(cfg, "FrameRate", 0)
    if fr:
        sps.sps_timing_info_present_flag = 1
        sps.sps_num_units_in_tick = 1000
        sps.sps_time_scale = int(round(fr * 1000))
    for k, v in (tools or {}).items():
        setattr(sps, k, v)
    if getattr(sps, "sps_learned_intra_enabled_flag", 0):
        sps.sps_model_id = cfg.ModelId
        _set_task_branches(sps, getattr(cfg, "TaskBranches", "all"))
    tools_allowed = PROFILES[profile_idc].tools
    for k in hls.TOOL_FLAGS:
        if getattr(sps, k, 0) and k not in tools_allowed:
            raise EncoderError(f"Profile: {PROFILES[profile_idc].name} does not allow {k} "
                               f"(needed by CodingMode {cfg.CodingMode})")
    return sps


def _set_task_branches(sps, spec: str):
    """sps_task_branch_* from the TaskBranches option: all, none or a list of names / ids."""
    from ..decoder.model_data import find_task_branch, task_branches
    spec = (spec or "none").strip()
    if spec == "none":
        entries = []
    elif spec == "all":
        entries = task_branches(sps.sps_model_id)
    else:
        try:
            entries = [find_task_branch(sps.sps_model_id, n.strip()) for n in spec.split(",") if n.strip()]
        except KeyError as e:
            raise EncoderError(f"TaskBranches: {e.args[0]}")
    layers = sps.sps_num_latent_layers_minus1 + 1
    for e in entries:
        if e.num_layers > layers:
            raise EncoderError(f"TaskBranches: branch {e.name} needs {e.num_layers} latent layers, "
                               f"the stream has {layers}")
    sps.sps_num_task_branches = len(entries)
    sps.sps_task_branch_id = [e.branch_id for e in entries]
    sps.sps_task_branch_num_layers_minus1 = [e.num_layers - 1 for e in entries]


@register_picture_encoder("pcm")
def encode_pcm_picture(enc, pic: Picture, sps, poc):
    ph = Struct(ph_pic_order_cnt=poc, ph_pic_type=0, ph_pic_coding_mode=hls.PCM_MODE)
    pcm = Struct(pcm_sample=[np.asarray(p) for p in pic.planes])
    return [(hls.UT_PH, ph, 0), (hls.UT_PCM, pcm, 0)], pic


# coded-size multiple per coding mode (padding is signalled by the conformance window)
CODED_SIZE_ALIGN: dict[str, int] = {"pcm": 1}

CODING_MODE_TOOLS = {
    "pcm": {"sps_pcm_enabled_flag": 1},
}


class Encoder:
    def __init__(self, cfg, trace: Trace | None = None, search_schedule=None):
        """search_schedule: step schedule of the learned-intra latent search
        (refsw.encoder.latent_rdo.SearchSchedule; None: the shipped one).  A tuning
        knob for benchmarks/search_schedule.py, not a cfg key."""
        self.cfg = cfg
        self.trace = trace
        self.search_schedule = search_schedule
        mode = cfg.CodingMode
        if mode not in PICTURE_ENCODERS and mode not in SEQUENCE_ENCODERS:
            raise EncoderError(f"CodingMode: {mode!r} is not available; available: "
                               + ", ".join(sorted(set(PICTURE_ENCODERS) | set(SEQUENCE_ENCODERS))))
        self.mode = mode
        self.recon: list[Picture] = []
        self.log: list[str] = []

    def coded_size(self, pic):
        """Coded picture size: the picture size, or padded as the coding mode needs."""
        align = CODED_SIZE_ALIGN.get(self.mode, 1)
        return -(-pic.width // align) * align, -(-pic.height // align) * align

    def encode(self, pics) -> bytes:
        w = BitstreamWriter(self.trace)
        if self.mode in SEQUENCE_ENCODERS:
            pics = list(pics)
            if not pics:
                raise EncoderError("no picture to encode")
            self.recon = SEQUENCE_ENCODERS[self.mode](self, pics, w)
            w.write_unit(hls.UT_EOS, Struct())
            return w.getvalue()
        sps = None
        fmt = None
        for poc, pic in enumerate(pics):
            pic.validate()
            f = (pic.width, pic.height, pic.chroma_format, pic.bit_depth, pic.colour_space)
            if sps is None:
                cw, ch = self.coded_size(pic)
                sps = build_sps(pic, self.cfg, coded_width=cw, coded_height=ch,
                                tools=CODING_MODE_TOOLS.get(self.mode, {}))
                w.write_unit(hls.UT_SPS, sps)
                fmt = f
            elif f != fmt:
                raise EncoderError(f"picture {poc} has format {f}, the sequence has {fmt}")
            coded = pad_picture(pic, sps.sps_pic_width_in_luma_samples, sps.sps_pic_height_in_luma_samples)
            units, recon = PICTURE_ENCODERS[self.mode](self, coded, sps, poc)
            start = w.nbytes
            for ut, payload, layer in units:
                w.write_unit(ut, payload, layer_id=layer)
            self.log.append(f"POC {poc:4d} {8 * (w.nbytes - start):10d} bits")
            recons = layer_reconstructions(units, recon)
            self.recon.append(crop_to_output(recons[max(recons)], sps))
            if self.cfg.PictureHash:
                latents = None
                if getattr(self.cfg, "LatentHash", 0) and self.mode in LATENT_DECODERS:
                    latents = LATENT_DECODERS[self.mode](units, sps, sorted(recons))
                for ut, payload, layer in hash_units(recons, sps, self.cfg.PictureHash, latents):
                    w.write_unit(ut, payload, layer_id=layer)
        if sps is None:
            raise EncoderError("no picture to encode")
        w.write_unit(hls.UT_EOS, Struct())
        return w.getvalue()
