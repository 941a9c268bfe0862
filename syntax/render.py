"""Render syntax tables from the syntax structure functions themselves.

The table of a structure is a pretty-print of the AST of its one definition,
so the tables in docs/spec cannot drift from the parser and the writer.

Spec pages carry markers::

    <!-- syntax: seq_parameter_set -->
    ...generated table...
    <!-- /syntax -->

Data tables of the code are marked ``<!-- table: levels -->`` (Annex A,
Table 5-1), and normative integer arrays ``<!-- array: fL
refsw.decoder.track2.spatial.LUMA_FILTER -->`` (a symbol for the column
heads and the dotted name of a two-dimensional integer array of the normative
decoder, e.g. the filter tables of T2.3).

``python -m syntax.render docs/spec/*.md`` regenerates every marked table in
place; ``--check`` exits non-zero if a page is stale (used by the tests).
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import textwrap

IND = "&emsp;"

# derived-variable helpers of syntax.hls -> spec variable names (clause 6.1.2)
_DERIVED = {
    "num_comp(sps)": "NumComp",
    "bit_depth(sps)": "BitDepth",
    "pcm_w, pcm_h = comp_size(sps, c)": "CompWidth[ c ], CompHeight[ c ] per 6.1.2",
    "min(output_size(sps))": "Min( OutputWidth, OutputHeight )",
    "output_size(sps)[ 0 ]": "OutputWidth",
    "output_size(sps)[ 1 ]": "OutputHeight",
    "coded_bit_depth(sps, rm)": "CodedBitDepth",
    "MAX_LANES": "65536",
    "pcm_h": "CompHeight[ c ]",
    "pcm_w": "CompWidth[ c ]",
}

_DESC = {"ue": "ue(v)", "se": "se(v)", "flag": "u(1)"}


def _expr(node) -> str:
    s = ast.unparse(node)
    s = re.sub(r"\b(?:sps|ph|rm|fp|lat|hyp|es|pcm|dph|uh|uf|lv)\.", "", s)
    s = s.replace(" and ", " && ").replace(" or ", " || ")
    s = re.sub(r"\bnot\s+", "!", s)
    s = s.replace("PCM_MODE", "0").replace("LEARNED_MODE", "1").replace("INNER_MODE", "2") \
         .replace("FEATURE_MODE", "3")
    s = re.sub(r"\[(\w+)\]", r"[ \1 ]", s)
    for a, b in _DERIVED.items():
        s = s.replace(a, b)
    return s


def _name_of(call, pos_index):
    a = call.args[pos_index]
    return a.value if isinstance(a, ast.Constant) else ast.unparse(a)


def _kw(call, name):
    for k in call.keywords:
        if k.arg == name:
            return k.value
    return None


def _idx_suffix(call):
    idx = _kw(call, "idx")
    if idx is None:
        return ""
    if isinstance(idx, ast.Tuple):
        return "".join(f"[ {_expr(e)} ]" for e in idx.elts)
    return f"[ {_expr(idx)} ]"


def _range(call, lo_i, hi_i):
    args = call.args
    lo = _kw(call, "lo") or (args[lo_i] if len(args) > lo_i else None)
    hi = _kw(call, "hi") or (args[hi_i] if len(args) > hi_i else None)
    if lo is None and hi is None:
        return ""
    los = _expr(lo) if lo is not None else ""
    his = _expr(hi) if hi is not None else ""
    if los == "None":
        los = ""
    if his == "None":
        his = ""
    return f"{los} .. {his}" if (los or his) else ""


class _Renderer:
    def __init__(self):
        self.rows: list[tuple[str, str, str]] = []
        self.shalls: list[str] = []
        self.infers: list[str] = []

    def row(self, depth, text, desc="", rng=""):
        self.rows.append((IND * depth + text, desc, rng))

    def block(self, stmts, depth):
        for st in stmts:
            self.stmt(st, depth)

    def _sub_rows(self, stmts, depth):
        saved = self.rows
        self.rows = []
        self.block(stmts, depth)
        out, self.rows = self.rows, saved
        return out

    def stmt(self, st, depth):
        if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
            self.call(st.value, depth)
        elif isinstance(st, ast.If):
            body = self._sub_rows(st.body, depth + 1)
            orelse = self._sub_rows(st.orelse, depth + 1)
            if not body and not orelse:
                return
            test = st.test
            cond = ("more_rbsp_data( )" if isinstance(test, ast.Call)
                    and ast.unparse(test.func).startswith("rw.more_rbsp_data") else _expr(test))
            self.row(depth, f"if( {cond} ) {{")
            self.rows += body
            if orelse:
                self.row(depth, "} else {")
                self.rows += orelse
            self.row(depth, "}")
        elif isinstance(st, ast.For):
            body = self._sub_rows(st.body, depth + 1)
            if not body:
                return
            var = _expr(st.target)
            it = st.iter
            if isinstance(it, ast.Call) and ast.unparse(it.func) == "range":
                a = it.args
                start, stop = ("0", _expr(a[0])) if len(a) == 1 else (_expr(a[0]), _expr(a[1]))
                head = f"for( {var} = {start}; {var} < {stop}; {var}++ ) {{"
            else:
                head = f"for( {var} in {_expr(it)} ) {{"
            self.row(depth, head)
            self.rows += body
            self.row(depth, "}")
        elif isinstance(st, ast.While):
            body = self._sub_rows(st.body, depth + 1)
            test = st.test
            if isinstance(test, ast.Call) and ast.unparse(test.func).startswith("rw.more_rbsp_data"):
                cond = "more_rbsp_data( )"
            else:
                cond = _expr(test)
            self.row(depth, f"while( {cond} ) {{")
            self.rows += body
            self.row(depth, "}")
        elif isinstance(st, (ast.Assign, ast.AugAssign)):
            if isinstance(st, ast.Assign) and isinstance(st.value, ast.Call) and \
                    ast.unparse(st.value.func) in ("level_for",):
                return
            if isinstance(st, ast.AugAssign) and isinstance(st.op, ast.Add) and \
                    isinstance(st.value, ast.Constant) and st.value.value == 1:
                self.row(depth, f"{_expr(st.target)}++")
                return
            e = _expr(st)
            if "CompWidth" in e:
                return
            self.row(depth, e.replace("(", "( ").replace(")", " )"))
        elif isinstance(st, ast.Pass):
            pass
        elif isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant):
            pass  # docstring
        else:
            self.row(depth, _expr(st))

    def call(self, c, depth):
        fn = ast.unparse(c.func)
        if fn.startswith("rw."):
            m = fn[3:]
            if m in ("u", "f"):
                n = _expr(c.args[0])
                name = _name_of(c, 1) + _idx_suffix(c)
                if m == "f":
                    self.row(depth, name, f"f({n})", f"= {_expr(c.args[2])}")
                else:
                    self.row(depth, name, f"u({n})", _range(c, 2, 3))
            elif m in ("ue", "se", "flag"):
                name = _name_of(c, 0) + _idx_suffix(c)
                self.row(depth, name, _DESC[m], "" if m == "flag" else _range(c, 1, 2))
            elif m == "bytes":
                name = _name_of(c, 0) + _idx_suffix(c)
                n = c.args[1]
                count = "to the end of the unit" if (isinstance(n, ast.Constant) and n.value is None) else _expr(n)
                self.row(depth, f"for( i = 0; i < {count}; i++ )" if count[0] != "t"
                         else "while( more_data_in_unit( ) )")
                self.row(depth + 1, f"{name}[ i ]", "b(8)")
            elif m == "samples":
                name = _name_of(c, 0) + _idx_suffix(c)
                shape = c.args[1]
                dims = shape.elts if isinstance(shape, ast.Tuple) else [shape]
                vars_ = ["y", "x"] if len(dims) == 2 else ["i", "j", "k"][:len(dims)]
                for d, (v, e) in enumerate(zip(vars_, dims)):
                    self.row(depth + d, f"for( {v} = 0; {v} < {_expr(e)}; {v}++ )")
                sub = "".join(f"[ {v} ]" for v in vars_[:len(dims)])
                self.row(depth + len(dims), name + sub, f"u(v)", f"v = {_expr(c.args[2])}")
            elif m == "byte_alignment":
                self.row(depth, "byte_alignment( )")
            elif m == "rbsp_trailing_bits":
                self.row(depth, "rbsp_trailing_bits( )")
            elif m == "zero_alignment":
                name = _name_of(c, 0) if c.args else "alignment_zero_bit"
                self.row(depth, "while( !byte_aligned( ) )")
                self.row(depth + 1, name, "f(1)", "= 0")
            elif m == "shall":
                t = c.args[1]
                self.shalls.append(t.value if isinstance(t, ast.Constant) else ast.unparse(t))
            elif m == "infer":
                self.infers.append(f"When {_name_of(c, 0)} is not present, it is inferred to be equal to "
                                   f"{_expr(c.args[1])}.")
            else:
                self.row(depth, ast.unparse(c))
        else:
            # call of another syntax structure
            self.row(depth, f"{fn}( )")


def render_structure(fn) -> str:
    src = textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
    tree = ast.parse(src)
    fdef = tree.body[0]
    r = _Renderer()
    r.block(fdef.body, 1)
    args = [a.arg for a in fdef.args.args[2:]]
    lines = ["| Syntax | Descriptor | Range |", "|---|---|---|",
             f"| {fdef.name}( ) {{ | | |"]
    for text, desc, rng in r.rows:
        text = text.replace("|", "\\|")
        rng = rng.replace("|", "\\|")
        lines.append(f"| {text} | {desc} | {rng} |")
    lines.append("| } | | |")
    out = "\n".join(lines) + "\n"
    if r.infers:
        out += "\n" + "\n".join(f"- {t}" for t in r.infers) + "\n"
    if r.shalls:
        out += "\nConstraints checked at this structure:\n\n" + "\n".join(f"- {t}." for t in r.shalls) + "\n"
    return out


def structures():
    from . import hls, units
    out = {}
    for mod in (units, hls):
        for name, obj in vars(mod).items():
            if getattr(obj, "is_syntax_structure", False):
                out[name] = obj
    return out


_MARK = re.compile(r"(<!-- syntax: (\w+) -->\n)(.*?)(<!-- /syntax -->)", re.S)
_TABLE = re.compile(r"(<!-- table: (\w+) -->\n)(.*?)(<!-- /table -->)", re.S)
_ARRAY = re.compile(r"(<!-- array: (\w+) ([\w.]+) -->\n)(.*?)(<!-- /array -->)", re.S)

# modules whose arrays a spec page may print: the normative decoder and the syntax layer.
# The module is imported when the page is rendered (a documentation step), not by syntax/
# itself, which stays free of refsw imports (python -m refsw.layers --check).
_ARRAY_MODULES = ("refsw.decoder.", "syntax.")


def resolve_array(dotted: str):
    """The object named by ``package.module.NAME`` (a module of _ARRAY_MODULES)."""
    mod, _, attr = dotted.rpartition(".")
    if not mod.startswith(_ARRAY_MODULES):
        raise KeyError(f"array {dotted!r}: a spec page prints arrays of {', '.join(_ARRAY_MODULES)} only")
    return getattr(importlib.import_module(mod), attr)


def render_array(symbol: str, dotted: str) -> str:
    """A two-dimensional integer array as a table: one row per first index p,
    one column per second index k, head ``symbol[ p ][ k ]``."""
    rows = [[int(v) for v in row] for row in resolve_array(dotted)]
    ncol = len(rows[0])
    if any(len(r) != ncol for r in rows):
        raise ValueError(f"array {dotted!r} is not rectangular")
    out = ["| p | " + " | ".join(f"{symbol}[ p ][ {k} ]" for k in range(ncol)) + " |",
           "|" + "---|" * (ncol + 1)]
    out += [f"| {p} | " + " | ".join(str(v) for v in r) + " |" for p, r in enumerate(rows)]
    return "\n".join(out) + "\n"


def parse_array(text: str, symbol: str) -> list[list[int]]:
    """The integer rows of the table whose head names ``symbol`` in ``text``
    (a spec page), in row order: the inverse of :func:`render_array`, for tests
    that compare the printed tables with the code."""
    lines = text.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("| p | " + symbol + "[ p ][ 0 ]"))
    rows = []
    for ln in lines[head + 2:]:
        if not ln.startswith("|"):
            break
        cells = [c.strip().replace("\u2212", "-") for c in ln.strip().strip("|").split("|")]
        if int(cells[0]) != len(rows):
            raise ValueError(f"table {symbol}: row {cells[0]} out of order")
        rows.append([int(c) for c in cells[1:]])
    return rows


def _first_sentence(doc: str | None) -> str:
    """The first sentence of a docstring (its first paragraph may span lines)."""
    para = " ".join((doc or "").strip().split("\n\n")[0].split())
    m = re.match(r"(.*?\.)(?:\s|$)", para)
    return m.group(1) if m else para


def render_table(name: str) -> str:
    """Data tables of the spec rendered from the code (Annex A, Table 5-1)."""
    from . import hls, levels
    if name == "levels":
        rows = ["| level_idc | Level | MaxLumaPs | MaxDim | MaxUnitBytes | MaxFeatureElements | MaxRoi |",
                "|---|---|---|---|---|---|---|"]
        for lv in levels.LEVELS.values():
            rows.append(f"| {lv.level_idc} | {lv.name} | {lv.MaxLumaPs} | {lv.MaxDim} | {lv.MaxUnitBytes} | "
                        f"{lv.MaxFeatureElements} | {lv.MaxRoi} |")
        return "\n".join(rows) + "\n"
    if name == "profiles":
        rows = ["| profile_idc | Profile | Coding-tool enable flags that may be equal to 1 |", "|---|---|---|"]
        for p in levels.PROFILES.values():
            rows.append(f"| {p.profile_idc} | {p.name} | {', '.join(f for f in hls.TOOL_FLAGS if f in p.tools)} |")
        return "\n".join(rows) + "\n"
    if name == "unit_types":
        rows = ["| unit_type | Name | Content | Syntax structure |", "|---|---|---|---|"]
        for ut, nm in hls.UNIT_TYPE_NAMES.items():
            st = hls.PAYLOAD_STRUCTURES[ut]
            rows.append(f"| {ut} | {nm} | {_first_sentence(st.__doc__)} | "
                        f"{st.__name__}( ) ({st.clause}) |")
        rows.append(f"| {max(hls.UNIT_TYPE_NAMES) + 1}..47 | RSV | reserved | skipped by decoders |")
        rows.append("| 48..63 | UNSPEC | unspecified | skipped by decoders |")
        return "\n".join(rows) + "\n"
    raise KeyError(f"unknown table {name!r} in a spec page")


def render_page(text: str) -> str:
    structs = structures()

    def sub(m):
        name = m.group(2)
        if name not in structs:
            raise KeyError(f"unknown syntax structure {name!r} in a spec page")
        return m.group(1) + render_structure(structs[name]) + m.group(4)

    text = _MARK.sub(sub, text)
    text = _ARRAY.sub(lambda m: m.group(1) + render_array(m.group(2), m.group(3)) + m.group(5), text)
    return _TABLE.sub(lambda m: m.group(1) + render_table(m.group(2)) + m.group(4), text)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    stale = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            old = f.read()
        new = render_page(old)
        if new != old:
            if check:
                stale.append(p)
            else:
                with open(p, "w", encoding="utf-8") as f:
                    f.write(new)
    if stale:
        print("stale syntax tables in: " + ", ".join(stale) + " (run python -m syntax.render docs/spec/*.md)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
