"""Record the SHA-256 of the registered integer data files in refsw/decoder/model_data.py (10.6).

    python -m refsw.models.record_hashes

Run it after converting new weights (scripts/release_intra.sh does); the decoder
loads only integer data whose hash is the registered one.
"""
from __future__ import annotations

import sys

from .registry import record_hashes


def main(argv=None) -> int:
    if argv if argv is not None else sys.argv[1:]:
        print("usage: python -m refsw.models.record_hashes", file=sys.stderr)
        return 2
    for name, sha in record_hashes():
        print(f"{sha}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
