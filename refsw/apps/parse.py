"""refsw-parse: print the syntax element trace of a refsw bitstream."""
from __future__ import annotations

import argparse
import sys

from syntax.rw import Trace
from syntax.units import iter_units
from . import run_app

PROG = "refsw-parse"


def _main(argv):
    ap = argparse.ArgumentParser(prog=PROG, description="Trace every syntax element of a refsw bitstream "
                                 "(bit position, name, descriptor, value).")
    ap.add_argument("bitstream")
    ap.add_argument("--units", action="store_true", help="one line per unit only")
    ap.add_argument("-o", "--output", help="write the trace to this file instead of stdout")
    a = ap.parse_args(argv)
    with open(a.bitstream, "rb") as f:
        data = f.read()
    out = open(a.output, "w", encoding="utf-8") if a.output else sys.stdout
    try:
        if a.units:
            for u in iter_units(data, None):
                out.write(u.summary() + "\n")
        else:
            trace = Trace(sink=lambda line: out.write(line + "\n"))
            for _ in iter_units(data, trace):
                pass
    finally:
        if a.output:
            out.close()
    return 0


def main(argv=None):
    sys.exit(run_app(PROG, _main, sys.argv[1:] if argv is None else argv))
