"""refsw-extract: sub-bitstream extraction (clause 5.4).

    refsw-extract --layers base in.bin out.bin       # keep unit_layer_id 0
    refsw-extract --layers 1 in.bin out.bin          # keep unit_layer_id <= 1

Units are copied byte for byte; units of higher layers (latent layers and
their DPH units) are dropped, the SPS is kept as is. The result is a
conforming bitstream (a learned picture may lack the LATENT units of its
upper layers, 8.2) whose pictures are checked against the DPH unit of their
highest remaining layer (HighestLayer, 8.1, 8.6).
"""
from __future__ import annotations

import argparse
import sys

from syntax.units import iter_units
from . import run_app

PROG = "refsw-extract"


def extract(data: bytes, max_layer: int) -> tuple[bytes, int, int]:
    out = []
    kept = dropped = 0
    for u in iter_units(data, parse=True):
        if u.unit_layer_id <= max_layer:
            out.append(data[u.offset:u.offset + 4 + u.size])
            kept += 1
        else:
            dropped += 1
    return b"".join(out), kept, dropped


def _main(argv):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", required=True, help="'base' or the highest unit_layer_id to keep")
    ap.add_argument("input")
    ap.add_argument("output")
    a = ap.parse_args(argv)
    if a.layers == "base":
        max_layer = 0
    else:
        try:
            max_layer = int(a.layers)
        except ValueError:
            raise ValueError(f"--layers: expected 'base' or a layer number 0..62, got {a.layers!r}")
        if not 0 <= max_layer <= 62:
            raise ValueError(f"--layers: layer {max_layer} outside 0..62")
    with open(a.input, "rb") as f:
        data = f.read()
    sub, kept, dropped = extract(data, max_layer)
    with open(a.output, "wb") as f:
        f.write(sub)
    print(f"{PROG}: {a.input} -> {a.output}: kept {kept} units ({len(sub)} bytes), dropped {dropped} units "
          f"({len(data) - len(sub)} bytes) above layer {max_layer}")
    return 0


def main(argv=None):
    sys.exit(run_app(PROG, _main, sys.argv[1:] if argv is None else argv))
