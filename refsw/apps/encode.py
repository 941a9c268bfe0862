"""refsw-encode: reference encoder application."""
from __future__ import annotations

import sys
import time

from .. import cfg as cfgmod
from ..content import default_image_path, default_video_path
from ..encoder import Encoder
from ..options import ENCODER_OPTIONS, apply_aliases
from ..picture import open_input, write_output
from . import run_app, trace_file

PROG = "refsw-encode"


def _main(argv):
    argv = apply_aliases(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(ENCODER_OPTIONS.help_text(PROG))
        return 0
    c, files = cfgmod.parse(argv, ENCODER_OPTIONS)
    from ..threads import set_threads
    set_threads(c.Threads)
    path = c.InputFile or (default_video_path() if c.CodingMode == "inner" else default_image_path())
    raw = path.lower().endswith(".yuv")   # a raw file has no header: the format comes from the options
    pics = open_input(path, width=(c.SourceWidth or None) if raw else None,
                      height=(c.SourceHeight or None) if raw else None,
                      chroma_format=c.InputChromaFormat if raw else None,
                      bit_depth=c.InputBitDepth if raw else None,
                      start_frame=c.FrameSkip, max_frames=c.FramesToBeEncoded or None)
    pics = list(pics)
    t0 = time.perf_counter()
    with trace_file(c.TraceFile) as trace:
        enc = Encoder(c, trace)
        data = enc.encode(pics)
    dt = time.perf_counter() - t0
    with open(c.BitstreamFile, "wb") as f:
        f.write(data)
    if c.ReconFile:
        write_output(c.ReconFile, enc.recon)
    npix = sum(p.width * p.height for p in pics)
    print(f"{PROG}: {path} -> {c.BitstreamFile}: {len(pics)} picture(s) {pics[0].width}x{pics[0].height} "
          f"{pics[0].chroma_format} {pics[0].bit_depth}-bit, mode {c.CodingMode}")
    for line in enc.log:
        print("  " + line)
    print(f"  {len(data)} bytes, {8 * len(data) / npix:.4f} bpp, {dt:.3f} s")
    return 0


def main(argv=None):
    sys.exit(run_app(PROG, _main, sys.argv[1:] if argv is None else argv))
