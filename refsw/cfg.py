"""VTM-style configuration: cfg files plus command-line options.

Options are declared once, in an :class:`OptionTable` of :class:`Option`
entries.  Each has a CamelCase key (``InputFile``) used in cfg files and as
the long command-line flag (``--InputFile value`` or ``--InputFile=value``),
and optionally a short flag (``-i value``).

:func:`parse` reads ``argv``: ``--cfg FILE`` / ``-c FILE`` (repeatable)
name cfg files, which are merged left to right (a later file overrides an
earlier one); option flags on the command line override every file,
wherever they appear relative to ``--cfg``.  The resulting :class:`Config`
has every key (defaults filled in) and ``config.source[key]`` telling where
each value came from: ``"default"``, ``"FILE:LINE"`` or ``"command line"``.

cfg file syntax (one option per line)::

    # full-line comment
    Key : value        # trailing comment
    Name : "a string # with a hash"   (JSON-style double-quoted string)

``Key = value`` is rejected.  Values: int (decimal), float, str (rest of the
line, trimmed; a value starting with ``"`` is a JSON string), bool
(``0``/``1``/``true``/``false``, any case) and lists of ints (separated by
commas and/or spaces).

Every error is a :class:`CfgError` naming the file and line (or "command
line"), the key, the bad value and what is allowed.  Unknown keys and flags
come with a "did you mean" suggestion.

:func:`dump` writes a cfg text that parses back to the same values, to
record the exact settings of a run.
"""
from __future__ import annotations

import difflib
import json
import math
import re
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Option", "OptionTable", "Config", "CfgError", "parse", "dump", "IntList"]

IntList = list[int]
"""The option type for lists of ints (``Option("Qps", IntList, [22, 27])``)."""

_SCALAR_TYPES = (int, float, str, bool)
_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SHORT_RE = re.compile(r"^-[A-Za-z][A-Za-z0-9]*$")
_RESERVED_KEYS = {"cfg", "help"}
_RESERVED_SHORTS = {"-c", "-h"}
_TRUE = {"1", "true"}
_FALSE = {"0", "false"}
COMMAND_LINE = "command line"
DEFAULT = "default"


class CfgError(ValueError):
    """A configuration error; the message names where (file:line or command
    line), which key, the offending value and what is allowed."""

    def __init__(self, message: str, *, where: str | None = None, key: str | None = None):
        self.message = message
        self.where = where
        self.key = key
        super().__init__(f"{where}: {message}" if where else message)


def _is_int_list(t) -> bool:
    return t is IntList or (getattr(t, "__origin__", None) is list
                            and getattr(t, "__args__", None) == (int,))


def _type_name(t) -> str:
    return "list of ints" if _is_int_list(t) else t.__name__


@dataclass
class Option:
    """One configuration option.

    key      CamelCase cfg key; the long flag is ``--key``.
    type     int, float, str, bool or IntList (``list[int]``).
    default  value of that type (not None).
    help     one-line description for :meth:`OptionTable.help_text`.
    short    optional short flag, e.g. ``"-i"``.
    choices  optional allowed values (for a list: allowed elements).
    range    optional inclusive ``(lo, hi)``, either end may be None (for a
             list: the range of each element).
    group    banner under which help_text lists the option.
    """

    key: str
    type: Any
    default: Any
    help: str = ""
    short: str | None = None
    choices: Sequence[Any] | None = None
    range: tuple[Any, Any] | None = None
    group: str = "General"

    def __post_init__(self):
        if not isinstance(self.key, str) or not _KEY_RE.match(self.key):
            raise ValueError(f"option key {self.key!r} must be letters, digits or '_', "
                             f"starting with a letter")
        if self.key.lower() in _RESERVED_KEYS:
            raise ValueError(f"option key {self.key!r} is reserved")
        if not (self.type in _SCALAR_TYPES or _is_int_list(self.type)):
            raise ValueError(f"option {self.key}: type must be int, float, str, bool or "
                             f"list[int], not {self.type!r}")
        if _is_int_list(self.type):
            self.type = IntList
        if self.short is not None and not _SHORT_RE.match(self.short):
            raise ValueError(f"option {self.key}: short flag {self.short!r} must look like '-x'")
        if self.short in _RESERVED_SHORTS:
            raise ValueError(f"option {self.key}: short flag {self.short} is reserved")
        if self.range is not None:
            if self.type not in (int, float) and not _is_int_list(self.type):
                raise ValueError(f"option {self.key}: range needs a numeric type")
            if len(self.range) != 2:
                raise ValueError(f"option {self.key}: range must be (lo, hi)")
            self.range = tuple(self.range)
        if self.choices is not None:
            self.choices = tuple(self.choices)
            for c in self.choices:
                self._check_scalar(c, f"choice {c!r}")
        if self.default is None:
            raise ValueError(f"option {self.key}: default must not be None")
        # default must itself be a valid value
        msg = self.check(self.default)
        if msg:
            raise ValueError(f"option {self.key}: default {self.default!r}: {msg}")
        if _is_int_list(self.type):
            self.default = list(self.default)
        elif self.type is float:
            self.default = float(self.default)

    @property
    def flag(self) -> str:
        return "--" + self.key

    def _elem_type(self):
        return int if _is_int_list(self.type) else self.type

    def _check_scalar(self, v, what) -> None:
        t = self._elem_type()
        ok = (isinstance(v, t) and not (t is not bool and isinstance(v, bool))) or \
             (t is float and isinstance(v, int) and not isinstance(v, bool))
        if not ok:
            raise ValueError(f"option {self.key}: {what} is not of type {t.__name__}")

    def allowed(self) -> str:
        """Human description of the allowed values."""
        if self.type is bool:
            return "0, 1, true or false"
        parts = []
        if _is_int_list(self.type):
            parts.append("integers separated by commas or spaces")
        elif self.type is int:
            parts.append("an integer")
        elif self.type is float:
            parts.append("a number")
        else:
            parts.append("a string")
        if self.choices is not None:
            parts.append("one of " + ", ".join(_fmt_scalar(c) for c in self.choices))
        if self.range is not None:
            lo, hi = self.range
            if lo is not None and hi is not None:
                parts.append(f"in {lo}..{hi}")
            elif lo is not None:
                parts.append(f">= {lo}")
            elif hi is not None:
                parts.append(f"<= {hi}")
        return ", ".join(parts)

    def check(self, value) -> str | None:
        """None if ``value`` (already typed) satisfies range/choices, else why not."""
        elems = value if _is_int_list(self.type) else [value]
        if _is_int_list(self.type) and not isinstance(value, (list, tuple)):
            return "not a list"
        for v in elems:
            try:
                self._check_scalar(v, repr(v))
            except ValueError as e:
                return str(e).split(": ", 1)[1]
            if self.choices is not None and v not in self.choices:
                return f"{_fmt_scalar(v)} is not allowed"
            if self.range is not None:
                lo, hi = self.range
                if (lo is not None and v < lo) or (hi is not None and v > hi) or \
                        (isinstance(v, float) and math.isnan(v)):
                    return f"{_fmt_scalar(v)} is out of range"
        return None

    def convert(self, text: str):
        """Text -> typed value; raises ValueError with a short reason."""
        t = self.type
        s = text.strip()
        if t is str:
            return text
        if t is bool:
            low = s.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("not a boolean")
        if _is_int_list(t):
            toks = [x for x in re.split(r"[,\s]+", s) if x]
            if s and re.search(r",\s*,|^,|,$", s):
                raise ValueError("empty list element")
            return [_parse_int(x) for x in toks]
        if s == "":
            raise ValueError("empty value")
        if t is int:
            return _parse_int(s)
        try:
            return float(s)
        except ValueError:
            raise ValueError("not a number") from None


def _parse_int(s: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", s):
        raise ValueError(f"{s!r} is not an integer")
    return int(s)


def _fmt_scalar(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)
    return str(v)


class OptionTable:
    """An ordered collection of :class:`Option`, looked up by key or short flag."""

    def __init__(self, options: Sequence[Option] = ()):
        self._opts: dict[str, Option] = {}
        self._lower: dict[str, str] = {}
        self._short: dict[str, Option] = {}
        for o in options:
            self.add(o)

    def add(self, opt: Option) -> Option:
        if hasattr(Config, opt.key) or opt.key in ("source", "help_requested"):
            raise ValueError(f"option key {opt.key!r} clashes with a Config attribute")
        if opt.key.lower() in self._lower:
            raise ValueError(f"option {opt.key} clashes with {self._lower[opt.key.lower()]}")
        if opt.short is not None and opt.short in self._short:
            raise ValueError(f"short flag {opt.short} of {opt.key} already used by "
                             f"{self._short[opt.short].key}")
        self._opts[opt.key] = opt
        self._lower[opt.key.lower()] = opt.key
        if opt.short is not None:
            self._short[opt.short] = opt
        return opt

    def __iter__(self) -> Iterator[Option]:
        return iter(self._opts.values())

    def __len__(self) -> int:
        return len(self._opts)

    def __contains__(self, key) -> bool:
        return key in self._opts

    def __getitem__(self, key: str) -> Option:
        return self._opts[key]

    def keys(self) -> list[str]:
        return list(self._opts)

    def by_short(self, flag: str) -> Option | None:
        return self._short.get(flag)

    def suggest(self, name: str) -> str | None:
        """Closest known key to ``name`` (case-insensitive first, then difflib)."""
        if name.lower() in self._lower:
            return self._lower[name.lower()]
        lowered = list(self._lower)
        m = difflib.get_close_matches(name.lower(), lowered, n=1, cutoff=0.6)
        return self._lower[m[0]] if m else None

    def defaults(self) -> "Config":
        return Config({o.key: _copy(o.default) for o in self},
                      {o.key: DEFAULT for o in self})

    def help_text(self, prog: str, width: int = 79) -> str:
        """Usage text: options grouped under ``=== group ===`` banners, with
        their type, allowed values and default."""
        lines = [f"usage: {prog} [-c FILE | --cfg FILE]... [--Key value | --Key=value]...",
                 "",
                 "cfg files are merged left to right; command-line options override all files.",
                 "",
                 "  -c FILE, --cfg FILE",
                 "        read a cfg file ('Key : value' lines); may be repeated",
                 "  -h, --help",
                 "        show this help and exit"]
        groups: dict[str, list[Option]] = {}
        for o in self:
            groups.setdefault(o.group, []).append(o)
        wrap = textwrap.TextWrapper(width=width, initial_indent=" " * 8,
                                    subsequent_indent=" " * 8)
        for g, opts in groups.items():
            lines += ["", f"=== {g} ==="]
            for o in opts:
                names = f"{o.short} VALUE, {o.flag} VALUE" if o.short else f"{o.flag} VALUE"
                lines.append(f"  {names}")
                desc = o.help.strip() or "(no description)"
                desc += f" [{o.allowed()}; default: {_format_value(o, o.default) or chr(34) * 2}]"
                lines += wrap.wrap(desc)
        return "\n".join(lines) + "\n"


def _copy(v):
    return list(v) if isinstance(v, list) else v


class Config(Mapping[str, Any]):
    """Option values by key, readable as ``config.Key`` or ``config["Key"]``.

    ``source[key]`` is ``"default"``, ``"FILE:LINE"`` or ``"command line"``.
    ``help_requested`` is True if ``-h``/``--help`` was on the command line.
    Two configs compare equal if their values are equal (sources ignored).
    """

    def __init__(self, values: dict[str, Any], source: dict[str, str],
                 help_requested: bool = False):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "source", dict(source))
        object.__setattr__(self, "help_requested", help_requested)

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no option {name!r}") from None

    def __setattr__(self, name, value):
        raise AttributeError("Config is read-only")

    def __eq__(self, other):
        if isinstance(other, Config):
            return self._values == other._values
        return NotImplemented

    def as_dict(self) -> dict[str, Any]:
        return {k: _copy(v) for k, v in self._values.items()}

    def __repr__(self):
        return f"Config({self._values!r})"


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------

def _value_error(opt: Option, where: str, text: str, reason: str, name: str) -> CfgError:
    return CfgError(f"bad value {text.strip()!r} for {name}: {reason}; "
                    f"allowed: {opt.allowed()}", where=where, key=opt.key)


def _typed(opt: Option, text: str, where: str, name: str):
    try:
        v = opt.convert(text)
    except ValueError as e:
        raise _value_error(opt, where, text, str(e), name) from None
    msg = opt.check(v)
    if msg:
        raise _value_error(opt, where, text, msg, name)
    return v


def _split_value(raw: str, where: str) -> str:
    """Value text after ':' -> value with trailing comment removed (or the
    decoded JSON string when it starts with a double quote)."""
    s = raw.strip()
    if s.startswith('"'):
        try:
            val, end = json.JSONDecoder().raw_decode(s)
        except json.JSONDecodeError as e:
            raise CfgError(f"bad quoted string {s!r}: {e.msg}", where=where) from None
        rest = s[end:].strip()
        if rest and not rest.startswith("#"):
            raise CfgError(f"unexpected text {rest!r} after quoted string", where=where)
        return val
    return s.split("#", 1)[0].strip()


def _read_cfg_file(path: str, table: OptionTable) -> list[tuple[str, Any, str]]:
    """[(key, value, 'path:line')] from one cfg file."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise CfgError(f"cfg file not found: {path}", where=COMMAND_LINE) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CfgError(f"cannot read cfg file {path}: {e}", where=COMMAND_LINE) from None
    out = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{n}"
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        colon = s.find(":")
        eq = s.find("=")
        if eq >= 0 and (colon < 0 or eq < colon):
            k = s[:eq].strip()
            raise CfgError(f"'Key = value' is not accepted; write '{k} : {s[eq + 1:].strip()}'",
                           where=where)
        if colon < 0:
            raise CfgError(f"expected 'Key : value', got {s!r}", where=where)
        key = s[:colon].strip()
        if not key or not _KEY_RE.match(key):
            raise CfgError(f"bad key {key!r}; expected 'Key : value'", where=where)
        if key not in table:
            hint = table.suggest(key)
            raise CfgError(f"unknown key {key!r}" + (f"; did you mean {hint!r}?" if hint else ""),
                           where=where, key=key)
        if key in seen:
            raise CfgError(f"duplicate key {key!r} (first set at line {seen[key]})",
                           where=where, key=key)
        seen[key] = n
        opt = table[key]
        value_text = _split_value(s[colon + 1:], where)
        out.append((key, _typed(opt, value_text, where, key), where))
    return out


def parse(argv: Sequence[str] | None, table: OptionTable) -> tuple[Config, list[str]]:
    """Parse ``argv`` (without the program name; None = ``sys.argv[1:]``).

    Returns ``(config, cfg_files)`` where cfg_files are the files read, in
    order.  ``--cfg FILE``, ``--cfg=FILE`` and ``-c FILE`` name cfg files;
    ``--Key value``, ``--Key=value`` and ``-s value`` (short flag) set
    options.  A bool flag not followed by a boolean literal means true
    (``--Flag`` alone); any other flag needs a value (which may start
    with '-', e.g. ``--QpOffset -3``).  If the same option is given twice
    on the command line the last one wins.  Raises :class:`CfgError`.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    cfg_files: list[str] = []
    cli: list[tuple[Option, str, str]] = []  # (option, text, flag as written)
    help_requested = False
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a in ("-h", "--help"):
            help_requested = True
            continue
        if a.startswith("--"):
            name, eq, inline = a[2:].partition("=")
            if name == "cfg":
                opt = None
            elif name in table:
                opt = table[name]
            else:
                hint = table.suggest(name) if name else None
                raise CfgError(f"unknown option {'--' + name!r}" +
                               (f"; did you mean '--{hint}'?" if hint else ""),
                               where=COMMAND_LINE, key=name)
            flag = "--" + name
        elif a.startswith("-") and len(a) > 1:
            flag, eq, inline = a.partition("=")
            if flag == "-c":
                opt = None
            else:
                opt = table.by_short(flag)
                if opt is None:
                    hint = table.suggest(flag.lstrip("-"))
                    raise CfgError(f"unknown option {flag!r}" +
                                   (f"; did you mean '--{hint}'?" if hint else ""),
                                   where=COMMAND_LINE, key=flag)
        else:
            raise CfgError(f"unexpected argument {a!r}; options are written '--Key value' "
                           f"and cfg files '--cfg FILE'", where=COMMAND_LINE)
        if eq:
            value = inline
        elif opt is not None and opt.type is bool and (
                i >= len(args) or args[i].strip().lower() not in _TRUE | _FALSE):
            value = "1"
        elif i < len(args):
            value = args[i]
            i += 1
        else:
            raise CfgError(f"{flag} needs a value", where=COMMAND_LINE,
                           key=opt.key if opt else None)
        if opt is None:
            cfg_files.append(value)
        else:
            cli.append((opt, value, flag))

    values = {o.key: _copy(o.default) for o in table}
    source = {o.key: DEFAULT for o in table}
    for path in cfg_files:
        for key, v, where in _read_cfg_file(path, table):
            values[key] = v
            source[key] = where
    for opt, text, flag in cli:
        name = flag if flag.startswith("--") else f"{flag} ({opt.flag})"
        values[opt.key] = _typed(opt, text, COMMAND_LINE, name)
        source[opt.key] = COMMAND_LINE
    return Config(values, source, help_requested), cfg_files


# --------------------------------------------------------------------------
# Dump
# --------------------------------------------------------------------------

def _format_value(opt: Option, v) -> str:
    if _is_int_list(opt.type):
        return ",".join(str(x) for x in v)
    if opt.type is str:
        needs_quotes = (v != v.strip() or "#" in v or v.startswith('"')
                        or any(c in v for c in "\n\r\t\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
                        or any("\ud800" <= c <= "\udfff" for c in v))
        return json.dumps(v) if needs_quotes else v
    return _fmt_scalar(v)


def dump(config: Mapping[str, Any], table: OptionTable, *, sources: bool = False) -> str:
    """cfg text ``Key : value`` for every option of ``table`` (grouped like
    the help text) that :func:`parse` reads back to the same values.  With
    ``sources=True`` each line carries a ``# from ...`` comment."""
    lines = ["# refsw configuration (parse back with --cfg)"]
    groups: dict[str, list[Option]] = {}
    for o in table:
        groups.setdefault(o.group, []).append(o)
    width = max((len(o.key) for o in table), default=0)
    src = getattr(config, "source", {})
    for g, opts in groups.items():
        lines += ["", f"#======== {g} ========"]
        for o in opts:
            if o.key not in config:
                raise CfgError(f"config has no value for {o.key}", key=o.key)
            text = _format_value(o, config[o.key])
            line = f"{o.key:<{width}} : {text}"
            if sources and o.key in src:
                line = f"{line:<{width + 24}} # from {src[o.key]}"
            lines.append(line.rstrip())
    return "\n".join(lines) + "\n"
