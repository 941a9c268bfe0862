"""The specification text (docs/spec) against the code: an implementer who
has only the text gets the numbers, tables and rules the decoder uses
(issue #28, "Defects in the text")."""
import os
import re

import numpy as np
import pytest

from syntax.render import parse_array

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "docs", "spec")


def _page(name):
    with open(os.path.join(SPEC, name), encoding="utf-8") as f:
        return f.read()


def _clause(text, head, stop=r"\n#{2,3} "):
    """The text of the clause whose heading starts with ``head`` up to the next heading."""
    i = text.index(head)
    m = re.compile(stop).search(text, i + len(head))
    return text[i:m.start() if m else len(text)]


# ---------------------------------------------------------------------------
# T2.3: the filter tables and the phase derivation are in the text
# ---------------------------------------------------------------------------

def test_t23_filter_tables_are_those_of_the_decoder():
    from refsw.decoder.track2 import spatial
    t23 = _clause(_page("track2.md"), "## T2.3")
    assert parse_array(t23, "fL") == spatial.LUMA_FILTER.tolist()
    assert parse_array(t23, "fC") == spatial.CHROMA_FILTER.tolist()


def _t23_from_the_text(s, dst_w, dst_h, bit_depth, f):
    """T2.3 as written: phases, clipped indices, exact sums, ( v + 2048 ) >> 12."""
    P, N = len(f), len(f[0])
    log2p = P.bit_length() - 1

    def phases(src, dst):
        out = []
        for i in range(dst):
            pos = ((2 * i + 1) * src * P - dst * P + dst) // (2 * dst)     # Floor( · ÷ · )
            x_int = pos >> log2p
            out.append((x_int, pos - (x_int << log2p)))
        return out

    src_h, src_w = len(s), len(s[0])
    clip = lambda lo, hi, x: min(max(x, lo), hi)   # noqa: E731
    xs, ys = phases(src_w, dst_w), phases(src_h, dst_h)
    t = [[sum(f[fr][k] * s[y][clip(0, src_w - 1, xi + k - N // 2 + 1)] for k in range(N)) for xi, fr in xs]
         for y in range(src_h)]
    return [[clip(0, (1 << bit_depth) - 1,
                  (sum(f[fr][k] * t[clip(0, src_h - 1, yi + k - N // 2 + 1)][i] for k in range(N)) + 2048) >> 12)
             for i in range(dst_w)] for yi, fr in ys]


@pytest.mark.parametrize("src,dst,bit_depth,chroma", [
    ((4, 3), (8, 6), 8, False), ((10, 6), (13, 7), 10, False), ((5, 4), (9, 11), 8, True),
    ((6, 6), (6, 6), 12, True), ((2, 2), (15, 3), 16, False)])
def test_t23_text_process_equals_the_decoder(src, dst, bit_depth, chroma):
    """The process of T2.3, implemented from the text alone (with the tables read from
    the page), gives the decoder's samples, at ratios 2, 1.3, 1.8, 1, 7.5 and odd sizes."""
    from refsw.decoder.track2 import spatial
    t23 = _clause(_page("track2.md"), "## T2.3")
    f = parse_array(t23, "fC" if chroma else "fL")
    rng = np.random.default_rng(sum(src) + sum(dst))
    plane = rng.integers(0, 1 << bit_depth, (src[1], src[0]))
    plane[:, : src[0] // 2] = (1 << bit_depth) - 1            # an edge: overshoot is clipped
    want = spatial.upsample_plane(plane.astype(np.uint16), dst[0], dst[1], bit_depth, chroma)
    got = _t23_from_the_text(plane.tolist(), dst[0], dst[1], bit_depth, f)
    assert got == want.tolist()


def test_t23_phase_example_of_the_text():
    from refsw.decoder.track2 import spatial
    t23 = _clause(_page("track2.md"), "## T2.3")
    pos = [int(v.replace("−", "-")) for v in re.search(r"P = 16: pos = ([−\d, ]+);", t23).group(1).split(",")]
    idx, ph = spatial.ref_positions(4, 8, 16)
    assert pos == (idx * 16 + ph).tolist()
