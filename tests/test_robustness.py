"""Corrupted conformance streams: every mutation decodes (hash match, mismatch or
absent) or raises BitstreamError; nothing else escapes, and nothing hangs.

A seeded mutation campaign over whole streams (all unit types): bit flips,
byte overwrites, insertions, deletions and truncations."""
import os
import random
import time

import pytest

from refsw.conformance import suite_dir
from refsw.decoder import Decoder
from refsw.tools.task_branch import TaskOutput
from syntax.errors import BitstreamError

STREAMS = ["pcm_yuv420_10bit_17x9", "syntax_misc_20x12", "learned_q36_70x45", "learned_task_face_256x192",
           "inner_hevc_ld_all_tools", "inner_vvc_ra"]


def _mutate(rng, data):
    b = bytearray(data)
    op = rng.choice(["flip", "trunc", "byte", "ins", "del"])
    if op == "flip":
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b) * 8)
            b[i // 8] ^= 1 << (i % 8)
    elif op == "trunc":
        b = b[:rng.randrange(len(b))]
    elif op == "byte":
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == "ins":
        i = rng.randrange(len(b))
        b[i:i] = bytes([rng.randrange(256)] * rng.randint(1, 4))
    else:
        i = rng.randrange(len(b))
        del b[i:i + rng.randint(1, 4)]
    return bytes(b)


@pytest.mark.parametrize("name", STREAMS)
def test_mutated_streams_fail_cleanly(name):
    with open(os.path.join(suite_dir(), "streams", name + ".bin"), "rb") as f:
        data = f.read()
    rng = random.Random(name)
    task = "face" if "task" in name else None
    seen = {"error": 0, "decoded": 0}
    for _ in range(40):
        bad = _mutate(rng, data)
        t0 = time.perf_counter()
        try:
            out = Decoder(task=task).decode(bad)
            assert all(d.hash_status in ("match", "mismatch", "absent", "off") for d in out)
            if task:
                assert all(isinstance(d.task, TaskOutput) for d in out)
            seen["decoded"] += 1
        except BitstreamError as e:
            assert str(e)          # names unit / element / bit
            seen["error"] += 1
        assert time.perf_counter() - t0 < 20, "a corrupted stream took more than 20 s"
    assert seen["error"] > 0
