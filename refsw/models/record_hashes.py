"""Record the SHA-256 of the registered integer data files (10.6) in
refsw/decoder/model_data.py and in Table 10-1 of docs/spec/10-learned-intra.md.

    python -m refsw.models.record_hashes

Run it after converting new weights (scripts/release_intra.sh does); the decoder
loads only integer data whose hash is the registered one, and the specification
lists the same hashes (an implementer loads only the file with the hash of the
text).  tests/test_spec_text.py fails while the table and the registry differ.
"""
from __future__ import annotations

import os
import re
import sys

from ..decoder.model_data import MODEL_DATA, TASK_BRANCH_DATA, record_hashes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_PAGE = os.path.join(ROOT, "docs", "spec", "10-learned-intra.md")
_BLOCK = re.compile(r"(<!-- model-data: sha256 -->\n)(.*?)(<!-- /model-data -->)", re.S)
_ROW = re.compile(r"^\| (\d+) \| (\d+|–) \| (\w+) \| `([\w.]+)` \| `([0-9a-f]{64})` \|$", re.M)


def spec_table(hashes: dict | None = None) -> str:
    """Table 10-1 from the registry; ``hashes`` (file name -> SHA-256) overrides
    the registered values (those just recorded, before the registry is reloaded)."""
    hashes = hashes or {}
    rows = ["| sps_model_id | sps_task_branch_id | Name | File | SHA-256 of the file |", "|---|---|---|---|---|"]
    entries = [(e.model_id, "–", e) for _, e in sorted(MODEL_DATA.items())]
    entries += [(e.model_id, str(e.branch_id), e) for _, e in sorted(TASK_BRANCH_DATA.items())]
    for mid, bid, e in sorted(entries, key=lambda t: (t[0], t[1] != "–", t[1])):
        sha = hashes.get(os.path.basename(e.int_file), e.int_sha256)
        if sha is None:
            continue   # a test registration without a hash
        rows.append(f"| {mid} | {bid} | {e.name} | `{os.path.basename(e.int_file)}` | `{sha}` |")
    return "\n".join(rows) + "\n"


def spec_hashes(text: str) -> dict:
    """{(sps_model_id, sps_task_branch_id or None): (file name, SHA-256)} of Table 10-1 in ``text``."""
    m = _BLOCK.search(text)
    if m is None:
        raise ValueError("no <!-- model-data: sha256 --> block (Table 10-1) in the page")
    return {(int(r[0]), None if r[1] == "–" else int(r[1])): (r[3], r[4]) for r in _ROW.findall(m.group(2))}


def write_spec(path: str = SPEC_PAGE, hashes: dict | None = None) -> bool:
    """Rewrite Table 10-1 of the page; True if it changed."""
    with open(path, encoding="utf-8") as f:
        old = f.read()
    if not _BLOCK.search(old):
        raise SystemExit(f"record_hashes: no <!-- model-data: sha256 --> block in {path}")
    new = _BLOCK.sub(lambda m: m.group(1) + spec_table(hashes) + m.group(3), old)
    if new != old:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return new != old


def main(argv=None) -> int:
    if argv if argv is not None else sys.argv[1:]:
        print("usage: python -m refsw.models.record_hashes", file=sys.stderr)
        return 2
    done = record_hashes()
    for name, sha in done:
        print(f"{sha}  {name}")
    changed = write_spec(hashes=dict(done))
    print(f"{os.path.relpath(SPEC_PAGE, ROOT)}: Table 10-1 {'rewritten' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
