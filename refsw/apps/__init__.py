"""Thin command-line applications (as TAppEncoder / TAppDecoder)."""
import contextlib
import sys

from syntax.errors import BitstreamError
from syntax.rw import Trace

from ..cfg import CfgError
from ..content import ContentError
from ..picture import PictureError

USER_ERRORS = (BitstreamError, CfgError, PictureError, ContentError, OSError, ValueError)


@contextlib.contextmanager
def trace_file(path: str):
    """A Trace writing to ``path`` (None when ``path`` is empty), closed on exit."""
    if not path:
        yield None
        return
    with open(path, "w", encoding="utf-8") as f:
        yield Trace(sink=lambda line: f.write(line + "\n"))


def run_app(prog, fn, argv):
    """Run ``fn(argv)``; user-facing errors become one line on stderr."""
    try:
        return fn(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BitstreamError as e:
        print(f"{prog}: bitstream error: {e}", file=sys.stderr)
        return 2
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: still one line, and say so
        print(f"{prog}: internal error ({type(e).__name__}): {e} -- please report with the input",
              file=sys.stderr)
        return 3
