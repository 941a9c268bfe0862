"""High-level syntax of a refsw bitstream (clauses 5 to 7).

Each function is the one definition of a syntax structure: it parses when
given a SyntaxReader, builds when given a SyntaxWriter, and is rendered into
the syntax tables of docs/spec/*.md by syntax.render.
"""
from __future__ import annotations

from .levels import LEVELS, PROFILES, level_for
from .rw import Struct, syntax_structure

# Table 5-1: unit_type
UT_SPS = 0
UT_PH = 1
UT_PCM = 2
UT_LATENT = 3
UT_HYPER = 4
UT_INNER = 5
UT_FEATURE = 6
UT_RESTORATION = 7
UT_DPH = 8
UT_EOS = 9
UT_RESIDUAL = 10

UNIT_TYPE_NAMES = {
    UT_SPS: "SPS", UT_PH: "PH", UT_PCM: "PCM", UT_LATENT: "LATENT",
    UT_HYPER: "HYPER", UT_INNER: "INNER", UT_FEATURE: "FEATURE",
    UT_RESTORATION: "RESTORATION", UT_DPH: "DPH", UT_EOS: "EOS", UT_RESIDUAL: "RESIDUAL",
}

# Table 6-2: ph_pic_coding_mode
PCM_MODE = 0
LEARNED_MODE = 1
INNER_MODE = 2
FEATURE_MODE = 3
CODING_MODE_NAMES = {PCM_MODE: "PCM", LEARNED_MODE: "LEARNED", INNER_MODE: "INNER", FEATURE_MODE: "FEATURE"}

MAX_LANES = 1 << 16


class UnitHeader(Struct):
    pass


class SPS(Struct):
    pass


class PH(Struct):
    pass


# ---------------------------------------------------------------------------
# Derived variables (clause 6.1.2)
# ---------------------------------------------------------------------------

def sub_wh(chroma_format_idc):
    """SubWidthC, SubHeightC (Table 6-1)."""
    return {0: (1, 1), 1: (2, 2), 3: (1, 1)}.get(chroma_format_idc, (1, 1))


def num_comp(sps):
    return 1 if sps.sps_chroma_format_idc == 0 else 3


def comp_size(sps, c):
    """Width and height of component c of the coded picture."""
    w, h = sps.sps_pic_width_in_luma_samples, sps.sps_pic_height_in_luma_samples
    if c == 0:
        return w, h
    sw, sh = sub_wh(sps.sps_chroma_format_idc)
    return (w + sw - 1) // sw, (h + sh - 1) // sh


def bit_depth(sps):
    return sps.sps_bit_depth_minus8 + 8


def coded_bit_depth(sps, rm):
    """CodedBitDepth (T2.1): BitDepth - BitDepthShift."""
    return bit_depth(sps) - (rm.rm_bit_depth_shift if rm.get("rm_bit_depth_truncation_flag") else 0)


def output_size(sps):
    """Width and height of the output (cropped) picture (offsets in luma samples)."""
    w = sps.sps_pic_width_in_luma_samples - (sps.sps_conf_win_left_offset + sps.sps_conf_win_right_offset)
    h = sps.sps_pic_height_in_luma_samples - (sps.sps_conf_win_top_offset + sps.sps_conf_win_bottom_offset)
    return w, h


# ---------------------------------------------------------------------------
# 5.2 Unit header
# ---------------------------------------------------------------------------

@syntax_structure("5.2")
def unit_header(rw, uh):
    rw.f(1, "forbidden_zero_bit", 0)
    rw.u(6, "unit_type", 0, 63)
    rw.u(6, "unit_layer_id", 0, 62)
    rw.u(3, "unit_temporal_id_plus1", 1, 7)


# ---------------------------------------------------------------------------
# 6.1 Sequence parameter set
# ---------------------------------------------------------------------------

@syntax_structure("6.1")
def seq_parameter_set(rw, sps):
    """Sequence parameter set."""
    rw.u(8, "sps_profile_idc", 0, 255)
    rw.shall(sps.sps_profile_idc in PROFILES,
             "sps_profile_idc shall be equal to a profile_idc of Table A-1", "sps_profile_idc", "A.2")
    rw.u(8, "sps_level_idc", 0, 255)
    rw.shall(sps.sps_level_idc in LEVELS,
             "sps_level_idc shall be equal to a level_idc of Table A-2", "sps_level_idc", "A.3")
    lv = level_for(sps.sps_level_idc)
    rw.ue("sps_pic_width_in_luma_samples", 1, lv.MaxDim)
    rw.ue("sps_pic_height_in_luma_samples", 1, lv.MaxDim)
    rw.shall(sps.sps_pic_width_in_luma_samples * sps.sps_pic_height_in_luma_samples <= lv.MaxLumaPs,
             "sps_pic_width_in_luma_samples * sps_pic_height_in_luma_samples shall be less than or equal to MaxLumaPs",
             "sps_pic_height_in_luma_samples", "A.3")
    rw.u(2, "sps_chroma_format_idc", 0, 3)
    rw.shall(sps.sps_chroma_format_idc != 2,
             "sps_chroma_format_idc shall not be equal to 2", "sps_chroma_format_idc")
    rw.u(2, "sps_colour_space_idc", 0, 1)
    rw.shall(sps.sps_colour_space_idc == 0 or sps.sps_chroma_format_idc == 3,
             "When sps_colour_space_idc is equal to 1, sps_chroma_format_idc shall be equal to 3",
             "sps_colour_space_idc")
    rw.ue("sps_bit_depth_minus8", 0, 8)
    rw.flag("sps_conformance_window_flag")
    if sps.sps_conformance_window_flag:
        rw.ue("sps_conf_win_left_offset", 0, sps.sps_pic_width_in_luma_samples)
        rw.ue("sps_conf_win_right_offset", 0, sps.sps_pic_width_in_luma_samples)
        rw.ue("sps_conf_win_top_offset", 0, sps.sps_pic_height_in_luma_samples)
        rw.ue("sps_conf_win_bottom_offset", 0, sps.sps_pic_height_in_luma_samples)
    else:
        rw.infer("sps_conf_win_left_offset", 0)
        rw.infer("sps_conf_win_right_offset", 0)
        rw.infer("sps_conf_win_top_offset", 0)
        rw.infer("sps_conf_win_bottom_offset", 0)
    rw.shall(min(output_size(sps)) >= 1,
             "sps_conf_win_left_offset + sps_conf_win_right_offset shall be less than "
             "sps_pic_width_in_luma_samples, and likewise for the height", "sps_conf_win_bottom_offset")
    rw.shall(sps.sps_conf_win_left_offset % sub_wh(sps.sps_chroma_format_idc)[0] == 0
             and sps.sps_conf_win_top_offset % sub_wh(sps.sps_chroma_format_idc)[1] == 0,
             "sps_conf_win_left_offset shall be a multiple of SubWidthC and sps_conf_win_top_offset "
             "a multiple of SubHeightC", "sps_conf_win_top_offset")
    rw.flag("sps_timing_info_present_flag")
    if sps.sps_timing_info_present_flag:
        rw.u(32, "sps_num_units_in_tick", 1, 0xFFFFFFFF)
        rw.u(32, "sps_time_scale", 1, 0xFFFFFFFF)
    rw.flag("sps_pcm_enabled_flag")
    rw.flag("sps_learned_intra_enabled_flag")
    if sps.sps_learned_intra_enabled_flag:
        rw.u(8, "sps_model_id", 1, 255)
        rw.u(8, "sps_operating_point_set_id", 0, 255)
        rw.u(3, "sps_num_latent_layers_minus1", 0, 7)
        rw.ue("sps_num_task_branches", 0, 8)
        for i in range(sps.sps_num_task_branches):
            rw.u(8, "sps_task_branch_id", 1, 255, idx=i)
            rw.shall(sps.sps_task_branch_id[i] not in sps.sps_task_branch_id[:i],
                     "The values of sps_task_branch_id shall be distinct", "sps_task_branch_id")
            rw.u(3, "sps_task_branch_num_layers_minus1", 0, sps.sps_num_latent_layers_minus1, idx=i)
    else:
        rw.infer("sps_num_latent_layers_minus1", 0)
        rw.infer("sps_num_task_branches", 0)
    rw.flag("sps_inner_codec_enabled_flag")
    if sps.sps_inner_codec_enabled_flag:
        rw.u(4, "sps_inner_codec_idc", 0, 1)
    rw.flag("sps_feature_coding_enabled_flag")
    rw.flag("sps_roi_enabled_flag")
    rw.flag("sps_spatial_resampling_enabled_flag")
    rw.flag("sps_temporal_resampling_enabled_flag")
    rw.flag("sps_bit_depth_truncation_enabled_flag")
    rw.flag("sps_post_filter_enabled_flag")
    if sps.sps_post_filter_enabled_flag:
        rw.u(8, "sps_post_filter_id", 0, 255)
    for name in TOOL_FLAGS:
        rw.shall(not sps.get(name) or name in PROFILES[sps.sps_profile_idc].tools,
                 "A coding-tool enable flag that Table A-1 does not list for the profile indicated by "
                 "sps_profile_idc shall be equal to 0", name, "A.2")
    rw.shall(sps.sps_pcm_enabled_flag or sps.sps_learned_intra_enabled_flag
             or sps.sps_inner_codec_enabled_flag or sps.sps_feature_coding_enabled_flag,
             "At least one of sps_pcm_enabled_flag, sps_learned_intra_enabled_flag, "
             "sps_inner_codec_enabled_flag and sps_feature_coding_enabled_flag shall be equal to 1",
             "sps_post_filter_enabled_flag")
    rw.flag("sps_extension_flag")
    if sps.sps_extension_flag:
        i = 0
        while rw.more_rbsp_data("sps_extension_data_flag"):
            rw.flag("sps_extension_data_flag", idx=i)
            i += 1
    rw.rbsp_trailing_bits()


TOOL_FLAGS = (
    "sps_pcm_enabled_flag", "sps_learned_intra_enabled_flag", "sps_inner_codec_enabled_flag",
    "sps_feature_coding_enabled_flag", "sps_roi_enabled_flag", "sps_spatial_resampling_enabled_flag",
    "sps_temporal_resampling_enabled_flag", "sps_bit_depth_truncation_enabled_flag",
    "sps_post_filter_enabled_flag",
)


# ---------------------------------------------------------------------------
# 6.2 Picture header
# ---------------------------------------------------------------------------

@syntax_structure("6.2")
def picture_header(rw, ph, sps):
    """Picture header: starts a coded picture."""
    rw.ue("ph_pic_order_cnt", 0, (1 << 31) - 1)
    rw.u(2, "ph_pic_type", 0, 2)
    rw.ue("ph_pic_coding_mode", 0, 3)
    rw.shall(ph.ph_pic_coding_mode != PCM_MODE or sps.sps_pcm_enabled_flag,
             "When sps_pcm_enabled_flag is equal to 0, ph_pic_coding_mode shall not be equal to 0",
             "ph_pic_coding_mode")
    rw.shall(ph.ph_pic_coding_mode != LEARNED_MODE or sps.sps_learned_intra_enabled_flag,
             "When sps_learned_intra_enabled_flag is equal to 0, ph_pic_coding_mode shall not be equal to 1",
             "ph_pic_coding_mode")
    rw.shall(ph.ph_pic_coding_mode != INNER_MODE or sps.sps_inner_codec_enabled_flag,
             "When sps_inner_codec_enabled_flag is equal to 0, ph_pic_coding_mode shall not be equal to 2",
             "ph_pic_coding_mode")
    rw.shall(ph.ph_pic_coding_mode != FEATURE_MODE or sps.sps_feature_coding_enabled_flag,
             "When sps_feature_coding_enabled_flag is equal to 0, ph_pic_coding_mode shall not be equal to 3",
             "ph_pic_coding_mode")
    rw.shall(ph.ph_pic_type == 0 or ph.ph_pic_coding_mode == INNER_MODE,
             "When ph_pic_coding_mode is not equal to 2, ph_pic_type shall be equal to 0", "ph_pic_type")
    if ph.ph_pic_coding_mode == LEARNED_MODE:
        rw.u(6, "ph_quality_idx", 0, 63)
    rw.rbsp_trailing_bits()


# ---------------------------------------------------------------------------
# 7.1 PCM picture payload
# ---------------------------------------------------------------------------

@syntax_structure("7.1")
def pcm_picture(rw, pcm, sps):
    """PCM picture: the samples of a picture, uncompressed."""
    for c in range(num_comp(sps)):
        pcm_w, pcm_h = comp_size(sps, c)
        rw.samples("pcm_sample", (pcm_h, pcm_w), bit_depth(sps), idx=c)
        rw.zero_alignment("pcm_alignment_zero_bit")


# ---------------------------------------------------------------------------
# 7.2 Learned latent layer, 7.3 hyper-latent, 7.4 entropy substream
# ---------------------------------------------------------------------------

@syntax_structure("7.4")
def entropy_substream(rw, es):
    rw.ue("es_num_lanes_minus1", 0, MAX_LANES - 1)
    rw.ue("es_lane_data_size", 0, (1 << 31) - 1)
    rw.ue("es_escape_data_size", 0, (1 << 31) - 1)
    rw.zero_alignment("es_alignment_zero_bit")
    rw.bytes("es_lane_data", es.es_lane_data_size)
    rw.bytes("es_escape_data", es.es_escape_data_size)


@syntax_structure("7.2")
def latent_layer(rw, lat, sps):
    """One layer of the learned latent (layer = unit_layer_id).  lat_substream
    holds the symbols of the first pass; lat_ctx_substream, present for a model
    with a spatial context (10.9), those of the second pass."""
    rw.ue("lat_num_channels", 1, 1024)
    entropy_substream(rw, rw.sub(lat, "lat_substream"))
    if rw.more_rbsp_data("lat_ctx_substream"):
        entropy_substream(rw, rw.sub(lat, "lat_ctx_substream"))
    rw.rbsp_trailing_bits()


@syntax_structure("7.3")
def hyper_latent(rw, hyp, sps):
    """Hyper-latent of the learned intra codec."""
    rw.ue("hyp_num_channels", 1, 1024)
    entropy_substream(rw, rw.sub(hyp, "hyp_substream"))
    rw.rbsp_trailing_bits()


# ---------------------------------------------------------------------------
# 7.5 Inner-codec payload
# ---------------------------------------------------------------------------

@syntax_structure("7.5")
def inner_codec_payload(rw, icp, sps):
    """Inner-codec (HEVC/VVC) bitstream bytes, carried as is."""
    rw.bytes("icp_data_byte", None)


# ---------------------------------------------------------------------------
# 7.6 Feature payload (Track 1)
# ---------------------------------------------------------------------------

@syntax_structure("7.6")
def feature_payload(rw, fp, sps):
    """Feature tensor for split inference (Track 1)."""
    lv = level_for(sps.sps_level_idc)
    rw.ue("fp_tensor_idx", 0, 255)
    rw.u(2, "fp_num_dims_minus1", 0, 3)
    num_elements = 1
    for i in range(fp.fp_num_dims_minus1 + 1):
        rw.ue("fp_dim", 1, lv.MaxFeatureElements, idx=i)
        num_elements = num_elements * fp.fp_dim[i]
    rw.shall(num_elements <= lv.MaxFeatureElements,
             "The product of fp_dim[ i ] shall be less than or equal to MaxFeatureElements", "fp_dim", "A.3")
    rw.u(4, "fp_sample_bit_depth_minus1", 0, 15)
    rw.se("fp_zero_point", -(1 << 16), 1 << 16)
    rw.ue("fp_step_num", 1, 1 << 16)
    rw.u(5, "fp_step_log2_den", 0, 31)
    rw.flag("fp_entropy_coded_flag")
    if fp.fp_entropy_coded_flag:
        entropy_substream(rw, rw.sub(fp, "fp_substream"))
    else:
        rw.zero_alignment("fp_alignment_zero_bit")
        rw.samples("fp_sample", (num_elements,), fp.fp_sample_bit_depth_minus1 + 1)
    rw.rbsp_trailing_bits()


# ---------------------------------------------------------------------------
# 7.7 Restoration metadata (Track 2)
# ---------------------------------------------------------------------------

@syntax_structure("7.7")
def restoration_metadata(rw, rm, sps):
    """Restoration metadata of the Track 2 tools."""
    lv = level_for(sps.sps_level_idc)
    rw.u(1, "rm_picture_level_flag", 0, 1)
    if not rm.rm_picture_level_flag:
        if sps.sps_inner_codec_enabled_flag:
            rw.ue("rm_inner_bit_depth_minus8", 0, 8)
            rw.shall(rm.rm_inner_bit_depth_minus8 in ((0, 2) if sps.sps_inner_codec_idc == 1 else (0, 2, 4)),
                     "With sps_inner_codec_idc equal to 1 (VVC), InnerBitDepth shall be 8 or 10; with 0 "
                     "(HEVC), 8, 10 or 12", "rm_inner_bit_depth_minus8")
        if sps.sps_spatial_resampling_enabled_flag:
            rw.flag("rm_spatial_resampling_flag")
            if rm.rm_spatial_resampling_flag:
                rw.ue("rm_coded_width_in_luma_samples", 1, sps.sps_pic_width_in_luma_samples)
                rw.ue("rm_coded_height_in_luma_samples", 1, sps.sps_pic_height_in_luma_samples)
                rw.shall(rm.rm_coded_width_in_luma_samples % 2 == 0 and rm.rm_coded_height_in_luma_samples % 2 == 0,
                         "rm_coded_width_in_luma_samples and rm_coded_height_in_luma_samples shall be even",
                         "rm_coded_height_in_luma_samples")
                rw.u(2, "rm_upsampling_filter_idc", 0, 0)
        if sps.sps_temporal_resampling_enabled_flag:
            rw.flag("rm_temporal_resampling_flag")
            if rm.rm_temporal_resampling_flag:
                rw.u(3, "rm_temporal_ratio_minus1", 0, 7)
                rw.u(2, "rm_temporal_interp_idc", 0, 1)
        if sps.sps_bit_depth_truncation_enabled_flag:
            rw.flag("rm_bit_depth_truncation_flag")
            if rm.rm_bit_depth_truncation_flag:
                rw.u(4, "rm_bit_depth_shift", 1, bit_depth(sps) - 1)
        if sps.sps_inner_codec_enabled_flag:
            rw.shall(rm.rm_inner_bit_depth_minus8 + 8 >= coded_bit_depth(sps, rm),
                     "InnerBitDepth (rm_inner_bit_depth_minus8 + 8) shall be greater than or equal to "
                     "CodedBitDepth (BitDepth - BitDepthShift)", "rm_inner_bit_depth_minus8")
        if sps.sps_post_filter_enabled_flag:
            rw.flag("rm_post_filter_flag")
            if rm.rm_post_filter_flag:
                for c in range(2):
                    rw.flag("rm_pf_component_flag", idx=c)
                    if rm.rm_pf_component_flag[c]:
                        for k in range(6):
                            rw.se("rm_pf_coeff", -64, 63, idx=(c, k))
    if rm.rm_picture_level_flag and sps.sps_roi_enabled_flag:
        rw.ue("rm_num_roi", 0, lv.MaxRoi)
        for i in range(rm.rm_num_roi):
            rw.ue("rm_roi_x", 0, output_size(sps)[0] - 1, idx=i)
            rw.ue("rm_roi_y", 0, output_size(sps)[1] - 1, idx=i)
            rw.ue("rm_roi_width_minus1", 0, output_size(sps)[0] - 1 - rm.rm_roi_x[i], idx=i)
            rw.ue("rm_roi_height_minus1", 0, output_size(sps)[1] - 1 - rm.rm_roi_y[i], idx=i)
    rw.rbsp_trailing_bits()


# ---------------------------------------------------------------------------
# 7.8 Decoded picture hash, 7.9 end of sequence
# ---------------------------------------------------------------------------

# Table 7-1: dph_hash_type
DPH_MD5 = 0
DPH_CRC32 = 1
DPH_HASH_TYPE_NAMES = {DPH_MD5: "MD5", DPH_CRC32: "CRC-32"}


@syntax_structure("7.8")
def decoded_picture_hash(rw, dph, sps):
    """Decoded picture hash: MD5 or CRC-32 of each component and, optionally, of
    the decoded latent of a learned picture."""
    rw.u(8, "dph_hash_type", 0, 1)
    for c in range(num_comp(sps)):
        if dph.dph_hash_type == 0:
            rw.bytes("dph_picture_md5", 16, idx=c)
        else:
            rw.u(32, "dph_picture_crc", idx=c)
    if rw.more_rbsp_data("dph_latent_md5" if dph.dph_hash_type == 0 else "dph_latent_crc"):
        if dph.dph_hash_type == 0:
            rw.bytes("dph_latent_md5", 16)
        else:
            rw.u(32, "dph_latent_crc")
    rw.rbsp_trailing_bits()


def dph_latent_hash(dph):
    """The latent hash of a DPH unit (dph_latent_md5 or dph_latent_crc), None when absent."""
    return dph.get("dph_latent_md5") if dph.dph_hash_type == DPH_MD5 else dph.get("dph_latent_crc")


@syntax_structure("7.9")
def end_of_sequence(rw, eos, sps):
    """End of a coded sequence (empty)."""


# ---------------------------------------------------------------------------
# 7.10 Residual enhancement layer
# ---------------------------------------------------------------------------

@syntax_structure("7.10")
def residual_layer(rw, res, sps):
    """Residual enhancement layer of a learned picture (clause 11): quantised 8x8
    transform coefficients of each component, coded in res_substream."""
    rw.u(6, "res_qp", 0, 63)
    for c in range(1, num_comp(sps)):
        rw.se("res_qp_delta", -63, 63, idx=c)
        rw.shall(0 <= res.res_qp + res.res_qp_delta[c] <= 63,
                 "res_qp + res_qp_delta[ c ] shall be in the range of 0 to 63", "res_qp_delta", "7.10")
    for c in range(num_comp(sps)):
        rw.se("res_scale_offset", -32, 32, idx=c)
    entropy_substream(rw, rw.sub(res, "res_substream"))
    rw.rbsp_trailing_bits()


# unit_type -> (payload syntax structure, needs an active SPS)
PAYLOAD_STRUCTURES = {
    UT_SPS: seq_parameter_set,
    UT_PH: picture_header,
    UT_PCM: pcm_picture,
    UT_LATENT: latent_layer,
    UT_HYPER: hyper_latent,
    UT_INNER: inner_codec_payload,
    UT_FEATURE: feature_payload,
    UT_RESTORATION: restoration_metadata,
    UT_DPH: decoded_picture_hash,
    UT_EOS: end_of_sequence,
    UT_RESIDUAL: residual_layer,
}

#: Unit types whose unit_layer_id may be non-zero (5.2); every other type has layer 0.
LAYERED_UNIT_TYPES = frozenset({UT_LATENT, UT_DPH, UT_RESIDUAL})
