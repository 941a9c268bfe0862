"""Option tables of the applications (declared once: cfg keys and CLI flags)."""
from __future__ import annotations

from .cfg import Option, OptionTable

G_IO = "Input / output"
G_PROF = "Profile, level and coding tools"
G_RATE = "Rate control (learned intra)"
G_STRUCT = "Coding structure (inner codec)"
G_MISC = "Miscellaneous"

ENCODER_OPTIONS = OptionTable([
    Option("InputFile", str, "", "input picture file (.png, .yuv, .y4m); empty: the default content "
           "shipped with refsw", short="-i", group=G_IO),
    Option("BitstreamFile", str, "str.bin", "output bitstream file", short="-o", group=G_IO),
    Option("ReconFile", str, "", "reconstructed pictures (.png, .yuv, .y4m); empty: not written", group=G_IO),
    Option("SourceWidth", int, 0, "width of a raw .yuv input", short="-wdt", range=(0, None), group=G_IO),
    Option("SourceHeight", int, 0, "height of a raw .yuv input", short="-hgt", range=(0, None), group=G_IO),
    Option("InputChromaFormat", str, "420", "chroma format of a raw .yuv input",
           choices=("400", "420", "444"), group=G_IO),
    Option("InputBitDepth", int, 8, "bit depth of a raw .yuv input", range=(8, 16), group=G_IO),
    Option("FrameRate", float, 0.0, "frame rate signalled in the SPS (0: no timing information)",
           short="-fr", range=(0, 1000), group=G_IO),
    Option("FrameSkip", int, 0, "number of input pictures to skip", short="-fs", range=(0, None), group=G_IO),
    Option("FramesToBeEncoded", int, 0, "number of pictures to code (0: all)", short="-f",
           range=(0, None), group=G_IO),
    Option("Profile", str, "main_intra", "profile (Annex A)",
           choices=("main_intra", "machine_video", "feature"), group=G_PROF),
    Option("Level", str, "auto", "level: auto (lowest that fits) or 1, 2, 3, 4, 5, 6", group=G_PROF),
    Option("CodingMode", str, "pcm", "picture coding mode: pcm, learned or inner", group=G_PROF),
    Option("ModelId", int, 1, "learned model (sps_model_id)", range=(1, 255), group=G_PROF),
    Option("TaskBranches", str, "all", "task branches signalled in the SPS (sps_task_branch_id): all, none, "
           "or names/ids separated by commas", group=G_PROF),
    Option("Quality", int, 32, "quality index ph_quality_idx of the learned codec", short="-q",
           range=(0, 63), group=G_RATE),
    Option("TargetBpp", float, 0.0, "target bits per pixel; > 0 searches the quality index",
           range=(0, 64), group=G_RATE),
    Option("LatentRefine", int, 0, "encoder-side RD optimisation of the latents: number of iterations "
           "(0: off; non-normative, refsw/encoder/latent_rdo.py)", range=(0, 10000), group=G_RATE),
    Option("ResidualQP", int, -1, "residual enhancement layer of learned pictures (clause 11): its res_qp "
           "(quantiser step doubles every 5.6); -1: no RESIDUAL unit", range=(-1, 63), group=G_RATE),
    Option("InnerCodec", str, "hevc", "inner codec of the Machine Video profile",
           choices=("hevc", "vvc"), group=G_STRUCT),
    Option("IntraPeriod", int, 1, "intra period of the inner codec (1: all intra, 0: only the first)",
           short="-ip", range=(0, 1024), group=G_STRUCT),
    Option("GOPSize", int, 1, "GOP size of the inner codec", short="-g", range=(1, 64), group=G_STRUCT),
    Option("LowDelay", bool, False, "low-delay structure (no picture reordering)", group=G_STRUCT),
    Option("QP", int, 32, "inner codec QP", range=(0, 63), group=G_STRUCT),
    Option("PictureHash", int, 1, "decoded picture hash units: 1 MD5 (16 bytes per component), 2 CRC-32 (4 bytes "
           "per component), 0 none", choices=(0, 1, 2), group=G_MISC),
    Option("LatentHash", int, 0, "learned pictures: the DPH units also carry the hash of the decoded latent of "
           "layers 0..unit_layer_id (7.8), checked by task-branch decoding (10.8): 1 on, 0 off", choices=(0, 1),
           group=G_MISC),
    Option("BaseLayerHash", int, 1, "also write the hash of the base-layer-only picture (layer 0), so that "
           "the extracted base layer is checked", choices=(0, 1), group=G_MISC),
    Option("TraceFile", str, "", "write the syntax element trace of the bitstream", group=G_MISC),
    Option("Threads", int, 0, "threads for the transforms (0: library default)", range=(0, 256), group=G_MISC),
    Option("Device", str, "cpu", "torch device for the transforms", group=G_MISC),
    # -- Track 2 tools (machine video around the inner codec; docs/spec/track2.md) --
    Option("InnerPreset", str, "medium", "inner encoder speed preset (x265: ultrafast..veryslow; vvenc: "
           "faster, fast, medium, slow, slower)", group="Track 2 tools"),
    Option("InnerPacking", str, "picture", "INNER units: picture (each picture carries the access units "
           "needed to output it) or sequence (the whole inner bitstream in the first picture: 6 bytes per "
           "unit less)", choices=("picture", "sequence"), group="Track 2 tools"),
    Option("RoiEnabled", bool, False, "ROI-based background simplification (sps_roi_enabled_flag)",
           group="Track 2 tools"),
    Option("RoiDetector", str, "mtcnn", "task network finding the ROI on the source: mtcnn (faces), hog "
           "(pedestrians), full (whole picture) or module:Class implementing refsw.tasks.TaskNetwork (the "
           "module must be importable, e.g. through PYTHONPATH)", group="Track 2 tools"),
    Option("RoiDetectorArgs", str, "", "settings of the ROI task network, key=value,key=value (e.g. "
           "upscale=2 for hog)", group="Track 2 tools"),
    Option("RoiThreshold", float, 0.6, "detection score above which a box is a ROI, in the network's own "
           "score range (mtcnn: probability 0..1; hog: SVM margin, about 0..3)", group="Track 2 tools"),
    Option("RoiMinArea", float, 0.01, "safe ROI: a picture whose regions cover less than this fraction of "
           "its area (no detection included) is coded without background simplification",
           range=(0, 1), group="Track 2 tools"),
    Option("RoiMargin", float, 0.25, "ROI box enlargement on each side, as a fraction of its size",
           range=(0, 4), group="Track 2 tools"),
    Option("RoiBackground", str, "blur", "background simplification: blur (strong low-pass), flat "
           "(mean value) or none (boxes signalled only)", choices=("blur", "flat", "none"), group="Track 2 tools"),
    Option("RoiBlurFactor", int, 8, "blur: background low-passed by this down/up-sampling factor",
           range=(2, 64), group="Track 2 tools"),
    Option("RoiPeriod", int, 16, "the ROI is the union of the boxes over aligned segments of this many "
           "pictures (stable regions cost fewer bits)", range=(1, 1024), group="Track 2 tools"),
    Option("RoiSignal", bool, True, "signal the ROI boxes in picture-level restoration metadata",
           group="Track 2 tools"),
    Option("SpatialResampling", bool, False, "spatial resampling (sps_spatial_resampling_enabled_flag)",
           group="Track 2 tools"),
    Option("SpatialResamplingRatio", float, 0.5, "coded size / source size (each dimension)",
           range=(0.125, 1.0), group="Track 2 tools"),
    Option("TemporalResampling", bool, False, "temporal resampling (sps_temporal_resampling_enabled_flag)",
           group="Track 2 tools"),
    Option("TemporalRatio", int, 2, "code every TemporalRatio-th picture (and the last); the others are "
           "interpolated", range=(1, 8), group="Track 2 tools"),
    Option("TemporalInterp", int, 0, "rm_temporal_interp_idc: 0 linear weighted average, 1 repeat the "
           "previous coded picture", range=(0, 1), group="Track 2 tools"),
    Option("BitDepthTruncation", bool, False, "bit-depth truncation (sps_bit_depth_truncation_enabled_flag)",
           group="Track 2 tools"),
    Option("BitDepthShift", int, 2, "bits removed before the inner codec", range=(1, 8), group="Track 2 tools"),
    Option("PostFilter", bool, False, "post filter (sps_post_filter_enabled_flag): integer Wiener filter "
           "estimated by the encoder, coefficients signalled", group="Track 2 tools"),
])

DECODER_OPTIONS = OptionTable([
    Option("BitstreamFile", str, "", "input bitstream file", short="-b", group=G_IO),
    Option("ReconFile", str, "", "output pictures (.png for one picture, .yuv, .y4m); empty: not written",
           short="-o", group=G_IO),
    Option("RefFile", str, "", "reference pictures: prints PSNR and bpp against them", group=G_IO),
    Option("CheckHash", bool, True, "check the decoded picture hash units", group=G_MISC),
    Option("TargetLayer", int, -1, "decode unit_layer_id <= TargetLayer only (-1: all)",
           range=(-1, 62), group=G_MISC),
    Option("TraceFile", str, "", "write the syntax element trace", group=G_MISC),
    Option("Threads", int, 0, "threads for the transforms (0: library default)", range=(0, 256), group=G_MISC),
    Option("Device", str, "cpu", "cpu: integer networks in numpy; a torch device (e.g. cuda) runs them in torch "
           "(imported only then); the output is identical", group=G_MISC),
    Option("Task", str, "", "decode the output of this task branch (name or id, e.g. face) instead of "
           "pictures; -o then receives JSON (10.8)", group=G_MISC),
])

# lower-case spellings accepted on the command line
ALIASES = {
    "--trace": "--TraceFile", "--threads": "--Threads", "--task": "--Task", "--quality": "--Quality",
    "--target-bpp": "--TargetBpp", "--ref": "--RefFile", "--device": "--Device",
    "--recon": "--ReconFile", "--no-hash-check": "--CheckHash=0",
}


def apply_aliases(argv):
    out = []
    for a in argv:
        name, eq, val = a.partition("=")
        if name in ALIASES:
            target = ALIASES[name]
            out.append(target + (eq + val if eq else ""))
        else:
            out.append(a)
    return out
