"""refsw-conformance: decode the conformance suite and compare decoded-picture hashes.

The suite lives in ``conformance/``: ``manifest.json`` (checked against
``manifest.schema.json``) lists every stream with what it exercises, its
profile and level, its frame count, the expected MD5 of each component of each
decoded picture, and the SHA-256 of its syntax trace. Negative streams list
the error they must produce (element and clause).

``--decoder 'CMD {in} {out}'`` runs another implementation: it must write
the output pictures to ``{out}`` (named ``out.yuv``, or ``out.rgb`` for RGB
streams) as raw planar samples (8-bit samples: one
byte; more: two bytes little-endian), in output order; the runner hashes
them with the picture format given in the manifest.

``--junit FILE`` also writes the results as JUnit XML (valid against
``conformance/junit.xsd``): one test case per stream, a ``<failure>`` for a
wrong output (hash, trace, task output) or a negative stream accepted or
rejected with another error, an ``<error>`` for a bitstream error in a
positive stream (with its element and clause) or a crash.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import inspect
import json
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections import Counter

import numpy as np

from syntax.errors import BitstreamError
from syntax.rw import Trace
from syntax.units import iter_units

from .decoder import probe
from .picture import plane_md5

PROG = "refsw-conformance"

SCHEMA_KEYS = {
    "name": str, "file": str, "description": str, "exercises": list, "profile": str, "level": str,
    "frames": int, "format": dict, "bitstream_sha256": str, "trace_sha256": str, "md5": list,
}
NEGATIVE_KEYS = {"name": str, "file": str, "description": str, "element": str, "clause": str,
                 "bitstream_sha256": str}


def suite_dir() -> str:
    env = os.environ.get("REFSW_CONFORMANCE_DIR")
    if env:
        return env
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(here, "conformance")


class ManifestError(ValueError):
    pass


def load_manifest(path: str) -> dict:
    """Load manifest.json and check it against the schema of manifest.schema.json."""
    with open(path, encoding="utf-8") as f:
        try:
            m = json.load(f)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{path}:{e.lineno}: {e.msg}")
    schema_path = os.path.join(os.path.dirname(path), "manifest.schema.json")
    if os.path.exists(schema_path):
        try:
            import jsonschema  # optional: full schema validation
            with open(schema_path, encoding="utf-8") as f:
                jsonschema.validate(m, json.load(f))
        except ImportError:
            pass
        except Exception as e:  # jsonschema.ValidationError
            raise ManifestError(f"{path}: does not match the schema: {getattr(e, 'message', e)}")
    for kind, keys in (("streams", SCHEMA_KEYS), ("negative", NEGATIVE_KEYS)):
        for i, s in enumerate(m.get(kind, [])):
            for k, t in keys.items():
                if k not in s:
                    raise ManifestError(f"{path}: {kind}[{i}] ({s.get('name', '?')}): missing key {k!r}")
                if not isinstance(s[k], t):
                    raise ManifestError(f"{path}: {kind}[{i}] ({s.get('name')}): {k} should be {t.__name__}")
    return m


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def trace_of(data: bytes) -> str:
    t = Trace()
    for _ in iter_units(data, t):
        pass
    return t.text()


def decode_internal(data: bytes, *, threads: int = 0, reference: bool = False, max_layer=None):
    """Decode with refsw; returns per-picture lists of component MD5 hex digests."""
    from .decoder import Decoder
    from .threads import set_threads
    set_threads(threads)
    dec = Decoder(max_layer=max_layer, reference=reference)
    out = dec.decode(data)
    return [[plane_md5(p, d.picture.bit_depth).hex() for p in d.picture.planes] for d in out], out


def decode_task(data: bytes, task: str, *, threads: int = 0, reference: bool = False,
                statuses: list | None = None) -> str:
    """SHA-256 of the canonical task-branch output (10.8.3) over the pictures; ``statuses``,
    when given, receives (poc, status, detail) of each picture's latent hash check (8.6)."""
    from .decoder import Decoder
    from .threads import set_threads
    set_threads(threads)
    out = Decoder(task=task, reference=reference).decode(data)
    if statuses is not None:
        statuses.extend((d.poc, d.hash_status, d.hash_detail) for d in out)
    return _sha256(b"".join(d.task.canonical() for d in out))


def _plane_shapes(fmt):
    w, h, cf = fmt["width"], fmt["height"], fmt["chroma_format"]
    if cf == "400":
        return [(h, w)]
    if cf == "420":
        return [(h, w), ((h + 1) // 2, (w + 1) // 2), ((h + 1) // 2, (w + 1) // 2)]
    return [(h, w)] * 3


def decode_external(cmd: str, path: str, fmt: dict, timeout: float):
    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "out.rgb" if fmt.get("colour_space") == "rgb" else "out.yuv")
        argv = [a.replace("{in}", path).replace("{out}", out) for a in shlex.split(cmd)]
        r = subprocess.run(argv, capture_output=True, timeout=timeout)
        if r.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"decoder exited {r.returncode}: "
                               f"{r.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
        raw = open(out, "rb").read()
    bd = fmt["bit_depth"]
    bps = 1 if bd <= 8 else 2
    shapes = _plane_shapes(fmt)
    fsize = sum(h * w for h, w in shapes) * bps
    if fsize == 0 or len(raw) % fsize:
        raise RuntimeError(f"output size {len(raw)} is not a multiple of the frame size {fsize}")
    pics = []
    pos = 0
    dt = np.uint8 if bps == 1 else np.dtype("<u2")
    while pos < len(raw):
        comps = []
        for h, w in shapes:
            n = h * w * bps
            plane = np.frombuffer(raw, dtype=dt, count=h * w, offset=pos).reshape(h, w)
            comps.append(plane_md5(plane, bd).hex())
            pos += n
        pics.append(comps)
    return pics


# ---------------------------------------------------------------------------
# Syntax coverage
# ---------------------------------------------------------------------------

def _const(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, int) else None


def spec_elements() -> dict[str, str]:
    """Every syntax element of the spec -> its descriptor kind ('flag' or other)."""
    return {k: v[0] for k, v in _spec_elements().items()}


#: an element whose legal values (a constant range) are at most this many is covered value by value
ENUM_MAX_VALUES = 4


def _spec_elements() -> dict[str, tuple]:
    """Every syntax element -> (kind, values): values the list of the legal values of a
    flag or of an element with a constant range of at most ENUM_MAX_VALUES values
    (e.g. dph_hash_type, ph_pic_type), None for the others."""
    from syntax.render import structures
    elements = {}
    for name, fn in structures().items():
        src = textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id == "rw":
                m = node.func.attr
                if m in ("u", "f") and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                    nm = node.args[1].value
                    is_flag = m == "u" and _const(node.args[0]) == 1
                    lo, hi = (_const(a) for a in (node.args[2:4] + [None, None])[:2]) if m == "u" else (None, None)
                    if is_flag:
                        elements[nm] = ("flag", [0, 1])
                    elif lo is not None and hi is not None and hi - lo < ENUM_MAX_VALUES:
                        elements[nm] = ("enum", list(range(lo, hi + 1)))
                    else:
                        elements[nm] = (m, None)
                elif m in ("ue", "se") and node.args and isinstance(node.args[0], ast.Constant):
                    lo, hi = (_const(a) for a in (node.args[1:3] + [None, None])[:2])
                    enum = lo is not None and hi is not None and hi - lo < ENUM_MAX_VALUES
                    elements[node.args[0].value] = ("enum", list(range(lo, hi + 1))) if enum else (m, None)
                elif m in ("flag", "bytes", "samples") and node.args and isinstance(node.args[0], ast.Constant):
                    elements[node.args[0].value] = ("flag", [0, 1]) if m == "flag" else (m, None)
                elif m == "zero_alignment" and node.args and isinstance(node.args[0], ast.Constant):
                    elements[node.args[0].value] = ("f", None)
                elif m == "rbsp_trailing_bits":
                    elements["rbsp_stop_one_bit"] = ("f", None)
                elif m == "byte_alignment":
                    elements["alignment_bit_equal_to_one"] = ("f", None)
    return elements


#: element values no conforming stream of this version can carry, or that have no decoding
#: process: reported apart, not counted (the element name covers all its values)
NOT_APPLICABLE = {
    "sps_chroma_format_idc=2": "shall not be 2 (6.1)",
    "ph_pic_coding_mode=3": "FEATURE pictures: Track 1, no decoding process in this version (8.1)",
    "fp_*": "feature payload: Track 1, no decoding process in this version (7.6)",
}


def _not_applicable(item: str) -> str | None:
    for pat, why in NOT_APPLICABLE.items():
        if item == pat or (pat.endswith("*") and item.startswith(pat[:-1])):
            return why
    return None


_LINE = re.compile(r"^\s*\d+\s+(\S+)\s+\S+\s+= (.*)$")


def coverage(traces: dict[str, str], reached=None) -> dict:
    """Which elements (and which values of flags and of small enumerations) the streams
    exercise; with ``reached`` (the keys a decoding-process probe collected,
    refsw.decoder.probe), also which decoding-process branches and T2.3 filter phases."""
    spec = _spec_elements()
    seen: dict[str, set] = {}
    by_stream: dict[str, set] = {}
    for sname, text in traces.items():
        s = set()
        for line in text.splitlines():
            m = _LINE.match(line)
            if not m:
                continue
            el = re.sub(r"\[.*$", "", m.group(1))
            s.add(el)
            seen.setdefault(el, set()).add(m.group(2).strip())
        by_stream[sname] = s
    items, excluded = [], []
    for el, (kind, values) in sorted(spec.items()):
        for item, hit in ([(f"{el}={v}", str(v) in seen.get(el, set())) for v in values] if values is not None
                          else [(el, el in seen)]):
            why = _not_applicable(item)
            if why is not None:
                excluded.append((item, why))
            else:
                items.append((item, hit))
    covered = sum(1 for _, c in items if c)
    cov = {"items": items, "covered": covered, "total": len(items),
           "pct": 100.0 * covered / max(len(items), 1), "by_stream": by_stream, "excluded": excluded}
    if reached is not None:
        from .decoder import probe
        branches = [(f"{proc}: {case} ({clause})", (proc, case) in reached)
                    for (proc, case), clause in probe.BRANCHES.items()]
        phases = [(f"{table} {p}", (table, p) in reached) for table, p in probe.PHASES]
        cov["branches"], cov["phases"] = branches, phases
        for key in ("branches", "phases"):
            n = sum(1 for _, c in cov[key] if c)
            cov[key + "_covered"], cov[key + "_pct"] = n, 100.0 * n / max(len(cov[key]), 1)
    return cov


def print_coverage(cov: dict) -> None:
    """The coverage report of refsw-conformance --coverage."""
    missing = [name for name, c in cov["items"] if not c]
    print(f"syntax coverage: {cov['covered']}/{cov['total']} element values ({cov['pct']:.1f}%)")
    if missing:
        print("  not covered: " + ", ".join(missing))
    if cov["excluded"]:
        whys: dict[str, list] = {}
        for item, why in cov["excluded"]:
            whys.setdefault(why, []).append(item)
        for why, names in whys.items():
            print(f"  not counted ({why}): " + ", ".join(names))
    if "phases" in cov:
        luma = sum(1 for n, c in cov["phases"] if c and "luma" in n)
        chroma = sum(1 for n, c in cov["phases"] if c and "chroma" in n)
        nl = sum(1 for n, _ in cov["phases"] if "luma" in n)
        print(f"filter phase coverage (T2.3): {cov['phases_covered']}/{len(cov['phases'])} ({cov['phases_pct']:.1f}%): "
              f"luma {luma}/{nl}, chroma {chroma}/{len(cov['phases']) - nl}")
        missing = [n for n, c in cov["phases"] if not c]
        if missing:
            print("  not reached: " + ", ".join(missing))
        print(f"decoding-process branches: {cov['branches_covered']}/{len(cov['branches'])} "
              f"({cov['branches_pct']:.1f}%)")
        missing = [n for n, c in cov["branches"] if not c]
        if missing:
            print("  not reached: " + "; ".join(missing))


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------

MUTATIONS = ("flip", "trunc", "byte", "ins", "del")


def mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One random corruption of a whole stream: 1-3 bit flips, a truncation,
    a byte overwrite, or 1-4 bytes inserted or deleted."""
    b = bytearray(data)
    op = rng.choice(MUTATIONS)
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
    return op, bytes(b)


def mutation_campaign(name: str, data: bytes, n: int, *, task: str | None = None,
                      time_limit: float = 20.0) -> tuple[Counter, list[str]]:
    """Decode n seeded corruptions of a stream (seed: its name).  Every outcome
    shall be a decoded result (hash match, mismatch or absent) or a
    BitstreamError; anything else, or a decode slower than time_limit, is a
    failure.  Returns (outcome counts, failure descriptions)."""
    from .decoder import Decoder
    rng = random.Random(name)
    counts: Counter = Counter()
    failures = []
    for i in range(n):
        op, bad = mutate(rng, data)
        t0 = time.perf_counter()
        try:
            Decoder(task=task).decode(bad)
            counts["decoded"] += 1
        except BitstreamError:
            counts["BitstreamError"] += 1
        except Exception as e:  # the finding: a corrupt stream escaped as another error
            counts["other"] += 1
            failures.append(f"{name} mutation {i} ({op}): {type(e).__name__}: {e}")
        dt = time.perf_counter() - t0
        if dt > time_limit:
            failures.append(f"{name} mutation {i} ({op}): {dt:.1f} s")
    return counts, failures


class Case:
    """The outcome of one stream (a JUnit test case): passed, or one failure (the decoder's output
    or behaviour is wrong) or error (a bitstream error where none is expected, or a crash)."""

    def __init__(self, name: str, kind: str, profile: str, frames):
        self.name, self.kind, self.profile, self.frames = name, kind, profile, frames
        self.time = 0.0
        self.outcome = None          # None (passed), "failure" or "error"
        self.type = self.message = self.detail = ""
        self.note = ""               # printed when it passed (e.g. the error a negative stream raised)
        self.out = ""                # what the stream did, when it passed (<system-out>)

    def fail(self, type_: str, message: str, detail: str = "", outcome: str = "failure"):
        if self.outcome is None:
            self.outcome, self.type, self.message, self.detail = outcome, type_, message, detail

    def crash(self, e: BaseException):
        """A bitstream error (element and clause in the message) or another exception (a crash);
        it replaces a failure found before (kept in the detail)."""
        before = f"\n(found before: {self.type}: {self.message})" if self.outcome else ""
        self.outcome = None
        if isinstance(e, BitstreamError):
            self.fail("BitstreamError", f"bitstream error at {e.element or '?'} (clause {e.clause or '?'}): {e}",
                      str(e) + before, outcome="error")
        else:
            self.fail(type(e).__name__, f"{type(e).__name__}: {e}",
                      "".join(traceback.format_exception(type(e), e, e.__traceback__)) + before, outcome="error")

    @property
    def status(self) -> str:
        return "PASS" if self.outcome is None else "FAIL"


def _stream_kind(s: dict) -> str:
    ex = s.get("exercises") or ["stream"]
    return re.sub(r"[^A-Za-z0-9_]", "_", ex[0])


def _md5_lines(pics) -> str:
    return "\n".join(f"  picture {i}: {' '.join(p)}" for i, p in enumerate(pics))


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default=suite_dir(), help="conformance directory (default: %(default)s)")
    ap.add_argument("--decoder", help="external decoder command with {in} and {out} placeholders")
    ap.add_argument("--threads", type=int, default=0, help="decoder threads (internal decoder)")
    ap.add_argument("--reference-path", action="store_true",
                    help="decode through the int64 reference path (learned tools)")
    ap.add_argument("--equivalence", action="store_true",
                    help="also decode with 1 and 2 threads and the reference path: hashes must agree")
    ap.add_argument("--coverage", action="store_true",
                    help="print the coverage report: syntax element values, decoding-process branches and "
                         "T2.3 filter phases the suite reaches")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per stream (external decoder)")
    ap.add_argument("-k", dest="select", help="only streams whose name contains this")
    ap.add_argument("--mutations", type=int, default=0, metavar="N",
                    help="also decode N seeded corruptions of each stream (internal decoder): each shall "
                         "decode or raise a bitstream error")
    ap.add_argument("--junit", metavar="FILE",
                    help="also write the results as JUnit XML (one test case per stream) to FILE")
    a = ap.parse_args(argv)
    if a.mutations and a.decoder:
        ap.error("--mutations runs the internal decoder; it cannot be combined with --decoder")
    mpath = os.path.join(a.suite, "manifest.json")
    m = load_manifest(mpath)
    cases: list[Case] = []
    traces = {}
    t_all = time.perf_counter()
    started = time.localtime()
    mutated: Counter = Counter()
    mutation_failures: list[str] = []
    reached: Counter | None = Counter() if a.coverage else None
    for s in m["streams"]:
        if a.select and a.select not in s["name"]:
            continue
        path = os.path.join(a.suite, s["file"])
        t0 = time.perf_counter()
        c = Case(s["name"], _stream_kind(s), s["profile"], s["frames"])
        cases.append(c)
        try:
            probe.COUNTER = reached      # the decoding-process probe: positive streams only
            data = open(path, "rb").read()
            if _sha256(data) != s["bitstream_sha256"]:
                raise RuntimeError("bitstream file differs from the manifest (sha256)")
            tr = trace_of(data)
            traces[s["name"]] = tr
            got_trace = _sha256(tr.encode())
            if got_trace != s["trace_sha256"]:
                c.fail("TraceMismatch", "syntax trace digest differs",
                       f"expected trace_sha256 {s['trace_sha256']}\ngot      trace_sha256 {got_trace}")
            if a.decoder:
                got = decode_external(a.decoder, path, s["format"], a.timeout)
                if reached is not None:   # branches and phases: from the internal decoder
                    decode_internal(data, max_layer=s.get("target_layer"))
                    for task in s.get("task_sha256") or {}:
                        decode_task(data, task)
            else:
                got, _ = decode_internal(data, threads=a.threads, reference=a.reference_path,
                                         max_layer=s.get("target_layer"))
            if c.outcome is None and got != s["md5"]:
                want = s["md5"]
                detail = f"expected MD5 (per picture, per component):\n{_md5_lines(want)}\ngot:\n{_md5_lines(got)}"
                if len(got) != len(want):
                    c.fail("HashMismatch", f"{len(got)} pictures, expected {len(want)}", detail)
                else:
                    bad = next(i for i, (g, e) in enumerate(zip(got, want)) if g != e)
                    c.fail("HashMismatch", f"MD5 differs from picture {bad}: expected {' '.join(want[bad])}, "
                           f"got {' '.join(got[bad])}", detail)
            if c.outcome is None and a.equivalence and not a.decoder:
                for kw in (dict(threads=1), dict(threads=2), dict(threads=1, reference=True)):
                    g2, _ = decode_internal(data, max_layer=s.get("target_layer"), **kw)
                    if g2 != got:
                        c.fail("EquivalenceMismatch", f"hashes differ with {kw}",
                               f"default decoding:\n{_md5_lines(got)}\nwith {kw}:\n{_md5_lines(g2)}")
                        break
            # task-branch outputs (10.8): internal decoder only
            for task, want in (s.get("task_sha256") or {}).items():
                if c.outcome is not None or a.decoder:
                    break
                kws = [dict(threads=a.threads, reference=a.reference_path)]
                if a.equivalence:
                    kws += [dict(threads=1), dict(threads=2), dict(threads=1, reference=True)]
                for kw in kws:
                    st = []
                    got_task = decode_task(data, task, statuses=st, **kw)
                    bad = [x for x in st if x[1] == "mismatch"]
                    if bad:
                        c.fail("LatentHashMismatch", f"task {task}: decoded latent hash mismatch in POC {bad[0][0]} "
                               f"({kw}): {bad[0][2]}", "\n".join(f"POC {p}: {d}" for p, _, d in bad))
                        break
                    if got_task != want:
                        c.fail("TaskMismatch", f"task {task} output differs ({kw}): expected {want}, got {got_task}")
                        break
            probe.COUNTER = None
            for task in [None, *(s.get("task_sha256") or {})] if a.mutations else []:
                counts, bad = mutation_campaign(s["name"], data, a.mutations, task=task)
                mutated.update(counts)
                mutation_failures += bad
        except Exception as e:  # a bitstream error where none is expected, a decoder failure or a crash
            c.crash(e)
        finally:
            probe.COUNTER = None
        c.time = time.perf_counter() - t0
    for s in m.get("negative", []):
        if a.select and a.select not in s["name"]:
            continue
        path = os.path.join(a.suite, s["file"])
        t0 = time.perf_counter()
        c = Case(s["name"], "negative", "negative", "-")
        cases.append(c)
        expected = f"{s['element']} (clause {s['clause']})"
        try:
            data = open(path, "rb").read()
            if a.decoder:
                try:
                    decode_external(a.decoder, path, {"width": 1, "height": 1, "chroma_format": "400",
                                                      "bit_depth": 8}, a.timeout)
                    c.fail("AcceptedInvalidStream", f"decoder accepted an invalid stream (expected a bitstream "
                           f"error at {expected})")
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    c.note, c.out = "rejected", f"rejected: {e}"
            else:
                try:
                    decode_internal(data)
                    c.fail("AcceptedInvalidStream", f"decoder accepted an invalid stream (expected a bitstream "
                           f"error at {expected})")
                except BitstreamError as e:
                    c.note = f"{e.element} ({e.clause})"
                    c.out = f"rejected as expected, {c.note}: {e}"
                    if e.element != s["element"] or e.clause != s["clause"]:
                        c.fail("WrongBitstreamError", f"bitstream error at {e.element} (clause {e.clause}), "
                               f"expected {expected}", str(e))
        except Exception as e:  # a crash: an invalid stream shall raise a bitstream error, nothing else
            c.crash(e)
        c.time = time.perf_counter() - t0
    failures = sum(c.status != "PASS" for c in cases)
    w = max([len(c.name) for c in cases] + [6])
    print(f"{'stream':<{w}}  {'profile':<14} {'pics':>4}  result  time    note")
    for c in cases:
        print(f"{c.name:<{w}}  {c.profile:<14} {str(c.frames):>4}  {c.status:<6}  {f'{c.time:.2f}s':<7} "
              f"{c.message if c.outcome else c.note}")
    n = len(cases)
    elapsed = time.perf_counter() - t_all
    print(f"{PROG}: {n - failures}/{n} passed, {failures} failed, {elapsed:.1f} s"
          + (f" (decoder: {a.decoder})" if a.decoder else ""))
    if a.mutations:
        failures += len(mutation_failures)
        for line in mutation_failures:
            print(f"MUTATION FAIL {line}")
        print(f"mutations: {sum(mutated.values())} corrupted streams: {mutated['BitstreamError']} bitstream "
              f"errors, {mutated['decoded']} decoded, {mutated['other']} other errors")
    if a.junit:
        props = {"suite": os.path.abspath(a.suite), "decoder": a.decoder or "refsw (internal)",
                 "threads": str(a.threads), "reference_path": str(a.reference_path),
                 "equivalence": str(a.equivalence), "select": a.select or ""}
        if a.mutations:
            props["mutations"] = (f"{a.mutations} per stream: {sum(mutated.values())} corrupted streams, "
                                  f"{len(mutation_failures)} failures")
            mc = Case("mutations", "mutations", "-", "-")
            if mutation_failures:
                mc.fail("MutationFailure", f"{len(mutation_failures)} corrupted stream(s) escaped as another "
                        f"error or were too slow", "\n".join(mutation_failures))
            cases.append(mc)
        write_junit(a.junit, cases, elapsed=elapsed, started=started, properties=props)
        print(f"JUnit XML: {a.junit}")
    if a.coverage:
        print_coverage(coverage(traces, reached))
    return failures


#: characters XML 1.0 cannot hold (a decoder's message might carry them)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def write_junit(path: str, cases: list[Case], *, elapsed: float, started, properties: dict) -> None:
    """JUnit XML (the Jenkins / Apache Ant format): <testsuites> with one <testsuite> of one
    <testcase> per stream (classname conformance.<kind>: pcm, learned, inner, negative ...), a
    <failure> for a wrong output or behaviour, an <error> for a bitstream error or a crash."""
    import socket

    from lxml import etree

    def text(x) -> str:
        return _NOT_XML.sub("\ufffd", str(x))

    counts = {"tests": len(cases), "failures": sum(c.outcome == "failure" for c in cases),
              "errors": sum(c.outcome == "error" for c in cases), "skipped": 0}
    root = etree.Element("testsuites", name=PROG, time=f"{elapsed:.3f}",
                         **{k: str(v) for k, v in counts.items() if k != "skipped"})
    suite = etree.SubElement(root, "testsuite", name=PROG, **{k: str(v) for k, v in counts.items()},
                             time=f"{elapsed:.3f}", timestamp=time.strftime("%Y-%m-%dT%H:%M:%S", started),
                             hostname=text(socket.gethostname() or "localhost"))
    props = etree.SubElement(suite, "properties")
    for k, v in properties.items():
        etree.SubElement(props, "property", name=k, value=text(v))
    for c in cases:
        tc = etree.SubElement(suite, "testcase", classname=f"conformance.{c.kind}", name=text(c.name),
                              time=f"{c.time:.3f}")
        if c.outcome:
            el = etree.SubElement(tc, c.outcome, message=text(c.message), type=c.type)
            el.text = text(c.detail or c.message)
        elif c.out:
            etree.SubElement(tc, "system-out").text = text(c.out)
    etree.ElementTree(root).write(path, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def main(argv=None):
    try:
        rc = run(argv)
    except ManifestError as e:
        print(f"{PROG}: manifest error: {e}", file=sys.stderr)
        rc = 255
    except OSError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        rc = 255
    sys.exit(min(rc, 255))
