"""Clause 8.1: high-level decoding process.

The decoder parses units in decoding order (syntax.units), assembles coded
pictures (a picture header and the payload units that follow it), runs the
picture decoding process of its ph_pic_coding_mode (registered by the modules
of the coding modes: pcm, learned_intra, track2), crops the decoded picture
by the conformance window and checks the decoded picture hash (7.8, 8.6).
"""
from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field

import numpy as np

from syntax import hls
from syntax.errors import BitstreamError
from syntax.levels import level_for
from syntax.rw import Trace
from syntax.units import Unit, iter_units

from ..picture import Picture, plane_crc32, plane_md5
from . import probe

CHROMA_FORMAT_NAMES = {0: "400", 1: "420", 3: "444"}

# ph_pic_coding_mode -> picture decoding process f(decoder, coded_picture) -> Picture
PICTURE_DECODERS: dict[int, callable] = {}

# ph_pic_coding_mode -> sequence decoding process
#   f(decoder, sps, seq_rm, coded_pictures) -> list[Picture] (one per coded picture, same order)
# Pictures of these modes are decoded together at the end of the coded
# sequence (EOS, a new SPS or the end of the bitstream), e.g. the inner codec
# whose bitstream is the concatenation of the INNER units (8.4).
SEQUENCE_DECODERS: dict[int, callable] = {}

# ph_pic_coding_mode -> task-branch decoding process (10.8)
#   f(decoder, coded_picture, task) -> task output
TASK_DECODERS: dict[int, callable] = {}


def register_picture_decoder(mode: int):
    def deco(fn):
        PICTURE_DECODERS[mode] = fn
        return fn
    return deco


@dataclass
class CodedPicture:
    """A picture header and the units of its picture (decoding order)."""
    ph: object
    ph_unit: Unit
    sps: object
    units: list = field(default_factory=list)   # payload units other than DPH
    dph: dict = field(default_factory=dict)      # unit_layer_id -> (Unit, DPH)
    nbytes: int = 0
    #: task mode: the latent hash check (8.6) of the decoded latent, as
    #: (status, detail, unit_layer_id, dph_hash_type); set by check_latent_hash
    latent_check: tuple | None = None

    def units_of(self, unit_type):
        return [u for u in self.units if u.unit_type == unit_type]


@dataclass
class DecodedPicture:
    poc: int
    picture: Picture
    hash_status: str      # "match", "mismatch", "absent", "off"
    hash_detail: str = ""
    hash_layer: int | None = None
    task: object = None   # task-branch output (10.8); picture is None then
    roi: list | None = None   # regions of interest (T2.7), (x, y, width, height) each; None: not enabled
    hash_type: int | None = None   # dph_hash_type of the checked DPH unit (7.8); None: none checked


def component_hash(plane, bit_depth: int, hash_type: int):
    """The hash of one component of the output picture (7.8): the MD5 (16 bytes) for
    dph_hash_type 0, the CRC-32 (an integer) for dph_hash_type 1."""
    return plane_md5(plane, bit_depth) if hash_type == hls.DPH_MD5 else plane_crc32(plane, bit_depth)


def latent_hash_bytes(y_hat, c_end: int) -> bytes:
    """LatentData (7.8): y_hat[ c ][ y ][ x ] of channels [0, c_end) in raster order of
    (c, y, x), each value modulo 2^32 as four bytes, least significant first."""
    a = np.ascontiguousarray(np.asarray(y_hat, dtype=np.int64)[0, :c_end])
    return (a & 0xFFFFFFFF).astype("<u4").tobytes()


def latent_hash(y_hat, c_end: int, hash_type: int):
    """dph_latent_md5 (dph_hash_type 0) or dph_latent_crc (1) of the decoded latent."""
    data = latent_hash_bytes(y_hat, c_end)
    return hashlib.md5(data).digest() if hash_type == hls.DPH_MD5 else zlib.crc32(data) & 0xFFFFFFFF


def format_hash(v) -> str:
    """An MD5 as 32 hex digits, a CRC-32 as 8."""
    return v.hex() if isinstance(v, (bytes, bytearray)) else f"{v:08x}"


def unit_error(msg, unit: Unit | None, *, element=None, clause="8.1", shall=None, structure=None, bitpos=None):
    where = f"unit {unit.index}" if unit is not None else None
    if bitpos is None and unit is not None:
        bitpos = unit.offset * 8
    return BitstreamError(msg, structure=structure or (unit.type_name if unit else None), element=element,
                          bitpos=bitpos, clause=clause, shall=shall, where=where)


def _check_temporal_id(unit: Unit, cur: CodedPicture | None):
    """5.2: SPS, EOS and sequence-level RESTORATION units have temporal id 0;
    the units of a picture share the temporal id of its PH unit, which is 0
    unless the picture is an INNER picture (whose ph_pic_type is informative)."""
    ut, tid = unit.unit_type, unit.unit_temporal_id
    if ut == hls.UT_PH:
        if tid != 0 and unit.payload.ph_pic_coding_mode != hls.INNER_MODE:
            need, why = 0, "of the PH unit of a picture that is not an INNER picture"
        else:
            return
    elif ut in (hls.UT_SPS, hls.UT_EOS) or (ut == hls.UT_RESTORATION
                                             and not unit.payload.rm_picture_level_flag):
        need, why = 0, "of a sequence-level unit"
    elif cur is not None:
        need, why = cur.ph_unit.unit_temporal_id, "of a picture's unit (that of its PH unit)"
    else:
        return   # a payload unit outside a picture: reported by the caller
    if tid != need:
        raise BitstreamError(f"{unit.type_name} unit with temporal id {tid}, expected {need}",
                             structure="unit_header", element="unit_temporal_id_plus1",
                             bitpos=unit.offset * 8 + 45, clause="5.2", where=f"unit {unit.index}",
                             shall=f"The temporal id {why} shall be {need}")


def _check_layer_id(unit: Unit, cur: CodedPicture):
    """5.2: LATENT, RESIDUAL and DPH units have a layer of the coded sequence (the
    other types have layer 0, checked by the unit parser)."""
    top = cur.sps.sps_num_latent_layers_minus1
    if unit.unit_layer_id > top:
        raise unit_error(f"{unit.type_name} unit with unit_layer_id {unit.unit_layer_id}, the SPS has latent layers "
                   f"0..{top}", unit, element="unit_layer_id", clause="5.2", bitpos=unit.offset * 8 + 39,
                   shall="unit_layer_id of a LATENT, RESIDUAL or DPH unit shall not exceed "
                         "sps_num_latent_layers_minus1")


def crop_to_output(pic: Picture, sps) -> Picture:
    """Apply the conformance window (clause 8.5)."""
    sw, sh = hls.sub_wh(sps.sps_chroma_format_idc)
    left, right = sps.sps_conf_win_left_offset, sps.sps_conf_win_right_offset
    top, bottom = sps.sps_conf_win_top_offset, sps.sps_conf_win_bottom_offset
    if not (left or right or top or bottom):
        return pic
    out_w, out_h = hls.output_size(sps)
    planes = []
    for c, p in enumerate(pic.planes):
        if c == 0:
            planes.append(p[top: top + out_h, left: left + out_w])
        else:
            cw, ch = (out_w + sw - 1) // sw, (out_h + sh - 1) // sh
            planes.append(p[top // sh: top // sh + ch, left // sw: left // sw + cw])
    return Picture([np.ascontiguousarray(p) for p in planes], pic.chroma_format, pic.bit_depth,
                   pic.colour_space)


def check_latent_hash(dec, cp: CodedPicture, layer: int, y_hat, c_end: int) -> None:
    """8.6, task mode: compare the latent y_hat decoded from the LATENT units of layers
    0..layer (channels [0, c_end)) with the latent hash of the picture's DPH unit of
    that layer, when it has one; the result goes to cp.latent_check."""
    if not dec.check_hash:
        cp.latent_check = ("off", "", None, None)
        return
    dph = cp.dph.get(layer)
    want = hls.dph_latent_hash(dph[1]) if dph else None
    if want is None:
        cp.latent_check = ("absent", "", None, None)
        if probe.COUNTER is not None:
            probe.COUNTER[("latent hash (task mode)", "absent")] += 1
        return
    hash_type = dph[1].dph_hash_type
    got = latent_hash(y_hat, c_end, hash_type)
    if probe.COUNTER is not None:
        probe.COUNTER[("latent hash (task mode)", hls.DPH_HASH_TYPE_NAMES[hash_type])] += 1
    detail = "" if got == want else (f"latent of layers 0..{layer} (channels 0..{c_end - 1}): expected "
                                      f"{format_hash(want)} got {format_hash(got)}")
    cp.latent_check = ("mismatch" if detail else "match", detail, layer, hash_type)


def _probe_picture(cp: CodedPicture) -> None:
    """Decoding-process probe (probe.py): the coding mode of a picture and, for a
    learned picture, its colour format, latent layers and decoding passes."""
    mode = cp.ph.ph_pic_coding_mode
    c = probe.COUNTER
    c[("coding mode", hls.CODING_MODE_NAMES.get(mode, str(mode)))] += 1
    if mode != hls.LEARNED_MODE:
        return
    sps = cp.sps
    c[("learned colour format", "RGB 4:4:4" if sps.sps_colour_space_idc == 1 else
       "YCbCr " + {1: "4:2:0", 3: "4:4:4"}.get(sps.sps_chroma_format_idc, "?"))] += 1
    top = sps.sps_num_latent_layers_minus1
    c[("latent layers of the SPS", str(top + 1))] += 1
    lats = cp.units_of(hls.UT_LATENT)
    highest = max((u.unit_layer_id for u in lats), default=-1)
    c[("latent layers of a picture", "all" if highest == top else "upper layers absent")] += 1
    two = any(u.payload.get("lat_ctx_substream") is not None for u in lats)
    c[("latent decoding passes", "2 (checkerboard context)" if two else "1 (no spatial context)")] += 1
    c[("residual enhancement layer (11)", "present" if cp.units_of(hls.UT_RESIDUAL) else "absent")] += 1


def sps_picture_format(sps):
    return (CHROMA_FORMAT_NAMES[sps.sps_chroma_format_idc], hls.bit_depth(sps),
            "rgb" if sps.sps_colour_space_idc == 1 else "ycbcr")


# units allowed inside a picture for each coding mode (8.1)
_PICTURE_UNITS = {
    hls.PCM_MODE: {hls.UT_PCM, hls.UT_RESTORATION},
    hls.LEARNED_MODE: {hls.UT_LATENT, hls.UT_HYPER, hls.UT_RESIDUAL, hls.UT_RESTORATION},
    hls.INNER_MODE: {hls.UT_INNER, hls.UT_RESTORATION},
    hls.FEATURE_MODE: {hls.UT_FEATURE},
}


class Decoder:
    """Decodes a refsw bitstream into output pictures (clause 8).

    check_hash: verify decoded-picture-hash units (default, as VTM).
    max_layer:  decode only units with unit_layer_id <= max_layer.
    reference:  run integer networks through the int64 reference path (clause 10.2)
                instead of the float64 path; the output is identical.
    task:       name or id of a task branch: decode its output (10.8) instead of
                pictures; latent layers the branch does not use are not decoded
                and no picture hash is checked.
    """

    def __init__(self, *, check_hash: bool = True, max_layer: int | None = None,
                 trace: Trace | None = None, threads: int | None = None, device: str = "cpu",
                 reference: bool = False, task: str | None = None):
        self.task = task or None
        self.check_hash = check_hash
        self.reference = reference
        self.max_layer = max_layer
        self.trace = trace
        self.threads = threads
        self.device = device
        self.sps = None
        self.output: list[DecodedPicture] = []

    def decode(self, data: bytes) -> list[DecodedPicture]:
        self.output = []
        self.pending: list[CodedPicture] = []
        self.seq_rm = None
        self.seq_pictures = 0       # picture headers in the current coded sequence
        self.seq_roi = []           # regions of interest of the last picture that signalled them (T2.7)
        cur: CodedPicture | None = None
        for unit in iter_units(data, self.trace):
            if self.max_layer is not None and unit.unit_layer_id > self.max_layer:
                continue
            ut = unit.unit_type
            if ut not in hls.PAYLOAD_STRUCTURES:
                continue  # reserved unit type: ignored (5.2)
            _check_temporal_id(unit, cur)
            if ut == hls.UT_SPS:
                if cur is not None:
                    self._finish(cur)
                    cur = None
                self._end_sequence()
                self.sps = unit.payload   # an SPS starts a new coded sequence
            elif ut == hls.UT_PH:
                if cur is not None:
                    self._finish(cur)
                cur = CodedPicture(unit.payload, unit, self.sps)
                self._check_sequence_mode(cur)
                self._check_poc(cur)
                self.seq_pictures += 1
            elif ut == hls.UT_EOS:
                if cur is not None:
                    self._finish(cur)
                    cur = None
                self._end_sequence()
            elif ut == hls.UT_DPH:
                if cur is None:
                    raise unit_error("DPH unit outside a picture", unit, element="unit_type", clause="5.3",
                               shall="A coded picture is a PH unit followed by its payload units, then its DPH "
                                     "units")
                _check_layer_id(unit, cur)
                if unit.unit_layer_id in cur.dph:
                    raise unit_error(f"second DPH unit with unit_layer_id {unit.unit_layer_id} in one picture",
                               unit, element="unit_layer_id", clause="5.3",
                               shall="A picture has at most one DPH unit per layer")
                if hls.dph_latent_hash(unit.payload) is not None and cur.ph.ph_pic_coding_mode != hls.LEARNED_MODE:
                    name = "dph_latent_md5" if unit.payload.dph_hash_type == hls.DPH_MD5 else "dph_latent_crc"
                    raise unit_error(f"{name} in the DPH unit of a picture with ph_pic_coding_mode "
                                     f"{cur.ph.ph_pic_coding_mode}", unit, element=name, clause="7.8",
                                     bitpos=unit.payload_bitpos,
                                     shall="The latent hash shall be present only in the DPH units of a LEARNED "
                                           "picture")
                cur.dph[unit.unit_layer_id] = (unit, unit.payload)
            else:
                if ut == hls.UT_RESTORATION and not unit.payload.rm_picture_level_flag:
                    if self.seq_rm is not None or self.seq_pictures:
                        raise unit_error("sequence-level RESTORATION unit " + (
                            "repeated" if self.seq_rm is not None else "after a picture header")
                            + " in a coded sequence", unit, element="rm_picture_level_flag", clause="7.7",
                            bitpos=unit.payload_bitpos,
                            shall="A coded sequence contains exactly one sequence-level RESTORATION unit, "
                                  "which precedes its first picture header")
                    self.seq_rm = unit.payload  # sequence-level metadata (7.7)
                    continue
                if cur is None:
                    raise unit_error(f"{unit.type_name} unit outside a picture (no preceding PH unit)", unit,
                               element="unit_type",
                               shall="A picture payload unit shall follow a PH unit")
                if cur.dph:
                    raise unit_error(f"{unit.type_name} unit after the DPH unit of its picture", unit, element="unit_type",
                               clause="5.3", shall="The DPH units of a picture shall follow its payload units")
                if ut not in _PICTURE_UNITS[cur.ph.ph_pic_coding_mode]:
                    raise unit_error(f"{unit.type_name} unit in a picture with ph_pic_coding_mode equal to "
                               f"{cur.ph.ph_pic_coding_mode}", unit, element="unit_type",
                               shall="The payload units of a picture shall be of the types allowed "
                                     "for its ph_pic_coding_mode (Table 8-1)")
                _check_layer_id(unit, cur)
                if ut == hls.UT_RESTORATION and cur.units_of(hls.UT_RESTORATION):
                    raise unit_error("second picture-level RESTORATION unit in one picture", unit,
                               element="rm_picture_level_flag", clause="7.7", bitpos=unit.payload_bitpos,
                               shall="A picture contains at most one RESTORATION unit with "
                                     "rm_picture_level_flag equal to 1")
                cur.units.append(unit)
                cur.nbytes += unit.size
                max_bytes = level_for(cur.sps.sps_level_idc).MaxUnitBytes
                if cur.nbytes > max_bytes:
                    raise unit_error(f"the units of the picture exceed MaxUnitBytes ({max_bytes})", unit,
                               element="unit_length", clause="A.3",
                               shall="The total size of the units of one coded picture shall not exceed MaxUnitBytes")
        if cur is not None:
            self._finish(cur)
        self._end_sequence()
        return self.output

    def _check_sequence_mode(self, cp: CodedPicture):
        """8.1: a coded sequence with pictures of a sequence-level coding mode
        (INNER) has pictures of that mode only."""
        mode = cp.ph.ph_pic_coding_mode
        if self.seq_pictures == 0:
            self.seq_mode = mode
        elif mode != self.seq_mode and (mode in SEQUENCE_DECODERS or self.seq_mode in SEQUENCE_DECODERS):
            raise unit_error(f"a {hls.CODING_MODE_NAMES.get(mode)} picture in a coded sequence of "
                       f"{hls.CODING_MODE_NAMES.get(self.seq_mode)} pictures", cp.ph_unit,
                       element="ph_pic_coding_mode", clause="8.1",
                       shall="The pictures of a coded sequence that contains INNER pictures shall all be "
                             "INNER pictures")

    def _check_poc(self, cp: CodedPicture):
        """8.1: picture order counts increase within a coded sequence; in a
        sequence of INNER pictures picture n has ph_pic_order_cnt n (T2.4)."""
        poc = cp.ph.ph_pic_order_cnt
        n = self.seq_pictures
        if self.seq_mode in SEQUENCE_DECODERS and poc != n:
            raise unit_error(f"ph_pic_order_cnt {poc} of picture {n} of a coded sequence of "
                       f"{hls.CODING_MODE_NAMES.get(self.seq_mode)} pictures, expected {n}", cp.ph_unit,
                       element="ph_pic_order_cnt", clause="T2.4", bitpos=cp.ph_unit.payload_bitpos,
                       shall="In a coded sequence of INNER pictures, the picture header n (n = 0, 1, ... in "
                             "unit order) shall have ph_pic_order_cnt equal to n")
        if n and poc <= self.seq_last_poc:
            raise unit_error(f"ph_pic_order_cnt {poc} does not exceed that of the preceding picture "
                       f"({self.seq_last_poc})", cp.ph_unit, element="ph_pic_order_cnt", clause="8.1",
                       bitpos=cp.ph_unit.payload_bitpos,
                       shall="Within a coded sequence, ph_pic_order_cnt shall increase from one picture "
                             "header to the next")
        self.seq_last_poc = poc

    def _end_sequence(self):
        if self.pending:
            pend, self.pending = self.pending, []
            mode = pend[0].ph.ph_pic_coding_mode
            pics = SEQUENCE_DECODERS[mode](self, pend[0].sps, self.seq_rm, pend)
            if len(pics) != len(pend):
                raise unit_error(f"the sequence decoding process gave {len(pics)} pictures for {len(pend)} "
                           "picture headers", pend[0].ph_unit, element="ph_pic_coding_mode", clause="8.4")
            for cp, pic in zip(pend, pics):
                self._output(cp, pic)
        self.seq_rm = None
        self.seq_pictures = 0
        self.seq_roi = []

    def _finish(self, cp: CodedPicture):
        mode = cp.ph.ph_pic_coding_mode
        if probe.COUNTER is not None:
            _probe_picture(cp)
        if self.task is not None:
            fn = TASK_DECODERS.get(mode)
            if fn is None:   # a conforming stream; branches are defined on learned pictures only
                raise ValueError(f"Task: picture {cp.ph.ph_pic_order_cnt} (unit {cp.ph_unit.index}) has "
                                 f"ph_pic_coding_mode {mode} ({hls.CODING_MODE_NAMES.get(mode)}); "
                                 f"task-branch decoding (10.8) applies to learned pictures only")
            res = fn(self, cp, self.task)
            status, detail, layer, hash_type = cp.latent_check or (
                ("absent" if self.check_hash else "off"), "", None, None)
            self.output.append(DecodedPicture(cp.ph.ph_pic_order_cnt, None, status, detail, layer, task=res,
                                              hash_type=hash_type))
            return
        if mode in SEQUENCE_DECODERS:
            self.pending.append(cp)
            return
        fn = PICTURE_DECODERS.get(mode)
        if fn is None:
            raise unit_error(f"ph_pic_coding_mode {mode} ({hls.CODING_MODE_NAMES.get(mode)}) is not supported by "
                       f"this decoder version", cp.ph_unit, element="ph_pic_coding_mode", clause="8.1")
        self._output(cp, fn(self, cp))

    def _output(self, cp: CodedPicture, pic: Picture):
        out = crop_to_output(pic, cp.sps)
        status, detail, layer, hash_type = "absent", "", None, None
        if cp.dph and self.check_hash:
            # the hash of the highest layer decoded covers this output (8.6)
            present = {u.unit_layer_id for u in cp.units} | {0}
            top = max(present)
            if top in cp.dph:
                layer = top
                unit, dph = cp.dph[top]
                hash_type = dph.dph_hash_type
                bad = []
                for c, plane in enumerate(out.planes):
                    got = component_hash(plane, out.bit_depth, hash_type)
                    want = dph.dph_picture_md5[c] if hash_type == hls.DPH_MD5 else dph.dph_picture_crc[c]
                    if got != want:
                        bad.append(f"component {c}: expected {format_hash(want)} got {format_hash(got)}")
                status = "mismatch" if bad else "match"
                detail = "; ".join(bad)
        elif not self.check_hash:
            status = "off"
        roi = None
        if cp.sps.sps_roi_enabled_flag:
            # T2.7: a picture without picture-level metadata has the previous picture's regions
            signalled = False
            for u in cp.units_of(hls.UT_RESTORATION):
                rm = u.payload
                if rm.rm_picture_level_flag:
                    signalled = True
                    self.seq_roi = [(rm.rm_roi_x[i], rm.rm_roi_y[i], rm.rm_roi_width_minus1[i] + 1,
                                     rm.rm_roi_height_minus1[i] + 1) for i in range(rm.rm_num_roi)]
            roi = list(self.seq_roi)
            if probe.COUNTER is not None:
                probe.COUNTER[("T2.7 regions of interest", "signalled in the picture" if signalled
                               else "from the previous picture")] += 1
                if signalled and not roi:
                    probe.COUNTER[("T2.7 regions of interest", "none (rm_num_roi 0)")] += 1
        if probe.COUNTER is not None:
            probe.COUNTER[("output cropping", "conformance window" if cp.sps.sps_conformance_window_flag
                           else "none")] += 1
            if status in ("match", "mismatch"):
                probe.COUNTER[("picture hash", hls.DPH_HASH_TYPE_NAMES[hash_type])] += 1
            elif status == "absent":
                probe.COUNTER[("picture hash", "no DPH unit of HighestLayer")] += 1
        self.output.append(DecodedPicture(cp.ph.ph_pic_order_cnt, out, status, detail, layer, roi=roi,
                                          hash_type=hash_type))
