"""The one error class for malformed or non-conforming bitstreams."""
from __future__ import annotations


class BitstreamError(Exception):
    """A bitstream is malformed or violates a "shall" of the specification.

    Carries the syntax structure, the element, the bit position (from the start
    of the unit payload or the stream, as ``where`` says), the clause and the
    shall-sentence that was checked.
    """

    def __init__(self, message: str, *, structure: str | None = None,
                 element: str | None = None, bitpos: int | None = None,
                 clause: str | None = None, shall: str | None = None,
                 where: str | None = None):
        self.message = message
        self.structure = structure
        self.element = element
        self.bitpos = bitpos
        self.clause = clause
        self.shall = shall
        self.where = where
        super().__init__(self.format())

    def format(self) -> str:
        parts = []
        loc = []
        if self.where:
            loc.append(self.where)
        if self.structure:
            loc.append(self.structure)
        if self.element:
            loc.append(self.element)
        if loc:
            parts.append("/".join(loc))
        if self.bitpos is not None:
            parts.append(f"bit {self.bitpos}")
        if self.clause:
            parts.append(f"clause {self.clause}")
        head = ", ".join(parts)
        msg = self.message
        if self.shall:
            msg += f' ("{self.shall}")'
        return f"{head}: {msg}" if head else msg
