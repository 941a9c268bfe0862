"""refsw-ctc: common test conditions (see docs/ctc.md).

    refsw-ctc run      --cfg ctc/ai.cfg --anchor hevc[,vvc,jpeg] [--out DIR] [--jobs N] [--force] [--Key value]...
    refsw-ctc anchors  --cfg ctc/conditions/ra.cfg --anchor hevc,vvc [--out DIR] [--jobs N] [--force]
    refsw-ctc bdrate   ANCHOR.csv TEST.csv [--method pchip|cubic] [--pareto] [--quality]
    refsw-ctc testsets [list | show NAME | prepare NAME | pin DIR --manifest FILE]
    refsw-ctc versions [--FfmpegPath PATH]
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import OrderedDict

PROG = "refsw-ctc"


def _grid_parser(cmd: str, anchors_many: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} {cmd}", allow_abbrev=False, add_help=False,
                                description="Other options: --cfg FILE (repeatable) and --Key value "
                                            "(encoder and CTC keys; list them with --help-keys).")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--help-keys", action="store_true", help="list the cfg keys (encoder + CTC)")
    p.add_argument("--anchor", required=False, default="hevc" if not anchors_many else None,
                   help="anchor codec: hevc, vvc or jpeg (comma-separated list" +
                   (")" if anchors_many else ": one report per anchor)"))
    p.add_argument("--out", default="", help="output folder (default: ctc-results/<condition>)")
    p.add_argument("--jobs", "-j", type=int, default=2, help="parallel workers (default 2)")
    p.add_argument("--force", action="store_true", help="recompute finished points")
    p.add_argument("--no-progress", action="store_true", help="no progress bar / lines")
    p.add_argument("--no-plots", action="store_true", help="skip the RD plots")
    return p


def _cmd_grid(argv, anchors_only: bool) -> int:
    from .conditions import merged_table, parse_condition
    from .report import anchor_summary, build_report, html_path
    from .runner import run

    cmd = "anchors" if anchors_only else "run"
    ap = _grid_parser(cmd, anchors_only)
    ns, rest = ap.parse_known_args(argv)
    if ns.help or ns.help_keys:
        print(ap.format_help())
        if ns.help_keys:
            print(merged_table().help_text(f"{PROG} {cmd}"))
        return 0
    if not ns.anchor:
        ap.error("--anchor is required (hevc, vvc, jpeg; comma-separated for anchors)")
    anchors = [a.strip() for a in ns.anchor.split(",") if a.strip()]
    if not anchors:
        ap.error("--anchor: no codec given")
    cond = parse_condition(rest)
    out = ns.out or os.path.join("ctc-results", cond.name)
    codecs = anchors if anchors_only else anchors + ["refsw"]
    res = run(cond, codecs, out_dir=out, jobs=ns.jobs, force=ns.force, progress=not ns.no_progress,
              log=lambda s: print(s, file=sys.stderr))
    print(f"{PROG} {cmd}: {len(res.testset.items)} item(s) of {res.testset.name}, {res.ran} point(s) run, "
          f"{res.skipped} reused, output in {res.out_dir}")
    plots = cond.ctc.Plots and not ns.no_plots
    if anchors_only:
        reports = [anchor_summary(res, anchors)]
    else:
        reports = [build_report(res, cond, "refsw", a, argv=[PROG, cmd] + list(argv), plots=plots) for a in anchors]
    for path, lines in reports:
        for ln in lines:
            print(ln)
        print(f"report: {path}")
        if os.path.isfile(html_path(path)):
            print(f"report: {html_path(path)}")
    failed = [r for r in res.results if r and r.get("status") != "ok"]
    if failed and anchors_only:
        return 1
    return 0


def read_curves(path: str) -> "OrderedDict[str, tuple[list, list]]":
    """name -> (rates, qualities) from a CSV with columns name,rate,quality."""
    out: OrderedDict = OrderedDict()
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    with f:
        rd = csv.DictReader(f)
        cols = [c.strip().lower() for c in (rd.fieldnames or [])]
        if not {"name", "rate", "quality"} <= set(cols):
            raise ValueError(f"{path}: needs the columns name,rate,quality (has {','.join(cols) or 'none'})")
        for n, row in enumerate(rd, 2):
            row = {k.strip().lower(): v for k, v in row.items() if k}
            try:
                r, q = float(row["rate"]), float(row["quality"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{n}: rate and quality must be numbers, got "
                                 f"{row.get('rate')!r}, {row.get('quality')!r}") from None
            rs, qs = out.setdefault(row["name"].strip(), ([], []))
            rs.append(r)
            qs.append(q)
    return out


def _cmd_bdrate(argv) -> int:
    from .bd import BDError, bd

    ap = argparse.ArgumentParser(prog=f"{PROG} bdrate", description="BD-rate of TEST against ANCHOR. "
                                 "Each CSV has the columns name,rate,quality. Prints one line per name "
                                 "and a last line bdrate_pct=<average over the names where it is defined>.")
    ap.add_argument("anchor")
    ap.add_argument("test")
    ap.add_argument("--method", choices=("pchip", "cubic"), default="pchip",
                    help="interpolation: pchip (JVET, default) or cubic (VCEG-M33)")
    ap.add_argument("--pareto", action="store_true", help="use only the Pareto-optimal points (task curves)")
    ap.add_argument("--quality", action="store_true", help="also print the BD-quality (e.g. BD-PSNR)")
    ns = ap.parse_args(argv)
    a, t = read_curves(ns.anchor), read_curves(ns.test)
    vals = []
    for name in list(a) + [n for n in t if n not in a]:
        if name not in a or name not in t:
            print(f"{name}: bdrate_pct=nan  # only in {'ANCHOR' if name in a else 'TEST'}")
            continue
        try:
            r = bd(*a[name], *t[name], kind="rate", method=ns.method, pareto=ns.pareto)
            line = f"{name}: bdrate_pct={r.value:.4f}"
            if ns.quality:
                q = bd(*a[name], *t[name], kind="quality", method=ns.method, pareto=ns.pareto)
                line += f" bd_quality={q.value:.4f}"
            if not r.monotonic:
                line += "  # non-monotonic"
            vals.append(r.value)
        except BDError as e:
            line = f"{name}: bdrate_pct=nan  # {e}"
        print(line)
    if not vals:
        print("bdrate_pct=nan")
        return 1
    print(f"bdrate_pct={sum(vals) / len(vals):.4f}")
    return 0


def _cmd_testsets(argv) -> int:
    from .testsets import ctc_dir, load_testset, pin_directory, prepare

    ap = argparse.ArgumentParser(prog=f"{PROG} testsets")
    ap.add_argument("action", nargs="?", default="list", choices=("list", "show", "prepare", "pin"))
    ap.add_argument("name", nargs="?")
    ap.add_argument("--root", default="", help="TestSetRoot for user sets")
    ap.add_argument("--ffmpeg", default="")
    ap.add_argument("--manifest", default="", help="pin: the manifest to write (e.g. ctc/testsets/NAME.json)")
    for k in ("description", "licence", "provenance"):
        ap.add_argument(f"--{k}", default="", help=f"pin: the {k} of the set / its items")
    ns = ap.parse_args(argv)
    if ns.action == "pin":
        if not (ns.name and ns.manifest):
            ap.error("pin needs a directory of images and --manifest FILE")
        ts = pin_directory(ns.name, ns.manifest, description=ns.description, licence=ns.licence,
                           provenance=ns.provenance)
        print(f"{ns.manifest}: {len(ts.items)} images of {ts.root}, sha256 of the samples pinned")
        return 0
    if ns.action == "list":
        for p in sorted((ctc_dir() / "testsets").glob("*.json")):
            try:
                ts = load_testset(str(p))
                print(f"{p.stem:<10} {ts.kind:<5} {len(ts.items):3d} items  {ts.description[:90]}")
            except ValueError as e:
                print(f"{p.stem:<10} error: {e}")
        return 0
    if not ns.name:
        ap.error("give a test-set name, manifest or directory")
    ts = load_testset(ns.name, ns.root)
    if ns.action == "prepare":
        prepare(ts, ffmpeg=ns.ffmpeg, log=print)
    for it in ts.items:
        fmt = f"{it.width}x{it.height}" + (f" {it.frames}f @{it.fps:g}" if it.kind == "video" else "")
        print(f"{it.name:<24} class {it.cls:<3} {fmt:<20} {it.licence or '-'}"
              + (f"\n{'':24} {it.path} sha256 {it.prepared_sha256}" if it.path else ""))
    return 0


def _cmd_versions(argv) -> int:
    from .anchors import versions
    from .conditions import CTC_OPTIONS
    from .runner import refsw_version

    ctc = CTC_OPTIONS.defaults().as_dict()
    if argv[:1] == ["--FfmpegPath"] and len(argv) > 1:
        ctc["FfmpegPath"] = argv[1]
    for a in ("hevc", "vvc", "jpeg"):
        try:
            print(f"{a}: {versions(a, ctc)}")
        except Exception as e:
            print(f"{a}: unavailable ({e})")
    print(f"refsw: {refsw_version()}")
    return 0


COMMANDS = {"run": lambda a: _cmd_grid(a, False), "anchors": lambda a: _cmd_grid(a, True),
            "bdrate": _cmd_bdrate, "testsets": _cmd_testsets, "versions": _cmd_versions}


def _main(argv) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"{PROG}: unknown command {cmd!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return COMMANDS[cmd](rest)


def main(argv=None):
    from ..cfg import CfgError
    from ..picture import PictureError
    from .anchors import AnchorError
    from .bd import BDError
    from ..ffmpeg import FfmpegError
    from .testsets import TestSetError

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        code = _main(argv)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        code = 130
    except (CfgError, PictureError, TestSetError, AnchorError, BDError, FfmpegError, ValueError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
