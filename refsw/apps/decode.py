"""refsw-decode: reference decoder application."""
from __future__ import annotations

import sys
import time

from syntax import hls

from .. import cfg as cfgmod
from ..decoder import Decoder
from ..options import DECODER_OPTIONS, apply_aliases
from ..picture import PictureError, open_input, write_output
from ..metrics import psnr
from . import run_app, trace_file

PROG = "refsw-decode"


def _main(argv):
    argv = apply_aliases(argv)
    if any(a in ("-h", "--help") for a in argv):
        print(DECODER_OPTIONS.help_text(PROG))
        return 0
    c, _ = cfgmod.parse(argv, DECODER_OPTIONS)
    if not c.BitstreamFile:
        raise cfgmod.CfgError("no bitstream given (-b FILE)", key="BitstreamFile")
    from ..threads import set_threads
    set_threads(c.Threads)
    with open(c.BitstreamFile, "rb") as f:
        data = f.read()
    t0 = time.perf_counter()
    with trace_file(c.TraceFile) as trace:
        dec = Decoder(check_hash=c.CheckHash, max_layer=None if c.TargetLayer < 0 else c.TargetLayer,
                      trace=trace, threads=c.Threads, device=c.Device, task=c.Task)
        out = dec.decode(data)
    dt = time.perf_counter() - t0
    if c.Task:
        return _task_output(c, out, data, dt)
    mismatches = 0
    for d in out:
        p = d.picture
        status = _status(d)
        print(f"POC {d.poc:4d} {p.width}x{p.height} {p.chroma_format} {p.bit_depth}-bit {status}"
              + (f" layer {d.hash_layer}" if d.hash_layer else ""))
        if d.hash_status == "mismatch":
            mismatches += 1
            print(f"  {d.hash_detail}", file=sys.stderr)
    if c.ReconFile:
        write_output(c.ReconFile, [d.picture for d in out])
    npix = sum(d.picture.width * d.picture.height for d in out)
    print(f"{PROG}: {len(out)} picture(s), {len(data)} bytes, {8 * len(data) / max(npix, 1):.4f} bpp, "
          f"{dt:.3f} s")
    if c.RefFile:
        refs = list(open_input(c.RefFile, width=out[0].picture.width, height=out[0].picture.height,
                               chroma_format=out[0].picture.chroma_format,
                               bit_depth=out[0].picture.bit_depth)
                    if c.RefFile.lower().endswith(".yuv") else open_input(c.RefFile))
        if len(refs) < len(out):
            raise PictureError(f"{len(refs)} reference pictures for {len(out)} decoded", path=c.RefFile)
        vals = [psnr(r, d.picture) for r, d in zip(refs, out)]
        mean = [sum(v[i] for v in vals) / len(vals) for i in range(len(vals[0]))]
        print("PSNR " + " ".join(f"{n}={m:.3f}" for n, m in zip(_comp_names(out[0].picture), mean))
              + f" dB  bpp={8 * len(data) / max(npix, 1):.4f}")
    if mismatches:
        print(f"{PROG}: error: decoded picture hash mismatch in {mismatches} picture(s)", file=sys.stderr)
        return 4
    return 0


def _task_output(c, out, data, dt):
    """--Task: JSON of the task-branch output, one entry per picture (10.8)."""
    import json
    res = [d.task.to_json(d.poc) for d in out]
    mismatches = 0
    for d, r in zip(out, res):
        print(f"POC {r['poc']:4d} task {r['task']}: {len(r['detections'])} detection(s) {_status(d, 'latent ')}"
              + (f" layer {d.hash_layer}" if d.hash_layer else ""))
        if d.hash_status == "mismatch":
            mismatches += 1
            print(f"  {d.hash_detail}", file=sys.stderr)
    text = json.dumps(res if len(res) != 1 else res[0], indent=1)
    if c.ReconFile:
        with open(c.ReconFile, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
    print(f"{PROG}: {len(out)} picture(s), task {c.Task}, {len(data)} bytes, {dt:.3f} s")
    if mismatches:
        print(f"{PROG}: error: decoded latent hash mismatch in {mismatches} picture(s)", file=sys.stderr)
        return 4
    return 0


def _status(d, what=""):
    """[MD5:OK], [CRC:MISMATCH], [no hash] ... of a decoded picture's hash check (8.6)."""
    kind = hls.DPH_HASH_TYPE_NAMES.get(d.hash_type, "MD5").replace("-32", "")
    return {"match": f"[{what}{kind}:OK]", "mismatch": f"[{what}{kind}:MISMATCH]", "absent": f"[no {what}hash]",
            "off": f"[{what}hash not checked]"}[d.hash_status]


def _comp_names(p):
    """Names of the values of refsw.metrics.psnr: per component, then the combined value."""
    if len(p.planes) == 1:
        return ["Y"]
    return ["R", "G", "B", "RGB"] if p.colour_space == "rgb" else ["Y", "U", "V", "YUV"]


def main(argv=None):
    sys.exit(run_app(PROG, _main, sys.argv[1:] if argv is None else argv))
