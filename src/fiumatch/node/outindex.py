"""The output index of an epoch: which of our subjects each OPRF output we serve came from.

An owner needs it only to answer a disclosure request (the hit token names an output). It is
stored as one blob per (peer, epoch) and read in place: at 10^6 keys it is about 100 MB of
bytes, never 10^6 Python objects, and a lookup is a binary search.

Format (version 2; all integers big-endian)::

    magic "FMIDX\\x00v2" (8 bytes) | u32 n | n outputs (64 bytes each, sorted)
    | (n + 1) u32 offsets into the refs | refs

Ref ``i`` (of output ``i``) is ``refs[offsets[i]:offsets[i+1]]``: u16 key type, u8 strength,
u8 length of the subject id, the subject id (UTF-8). Equal outputs (one key held by several
subjects, or under several types) are adjacent. Version 1 (no magic: rows of output, the same
ref, one after another, in key order) is still read, by a slower linear path.

This module must never log outputs or subject ids.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable, Iterator, Sequence

__all__ = ["OUTPUT_LEN", "OutputIndex", "RefPacker", "build_index", "filter_index"]

OUTPUT_LEN = 64
MAGIC = b"FMIDX\x00v2"
_HEAD = struct.Struct(">HBB")  # key type, strength, length of the subject id
_U32 = struct.Struct(">I")

Row = tuple[bytes, str, int, int]
"""(output, subject id, key type, strength)."""


class RefPacker:
    """Packs refs as they come (one per output, in output order) into one bytearray."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.offsets = array("I", [0])

    def add(self, subject_id: str, key_type: int, strength: int) -> None:
        sid = subject_id.encode("utf-8")
        if len(sid) > 255:
            raise ValueError("subject ids are at most 255 bytes")
        self.data += _HEAD.pack(key_type, strength & 0xFF, len(sid))
        self.data += sid
        self.offsets.append(len(self.data))

    def __len__(self) -> int:
        return len(self.offsets) - 1


def build_index(outputs: Sequence[bytes], refs: RefPacker) -> bytes:
    """The version-2 blob of ``outputs[i]`` with ref ``i`` of ``refs``."""
    n = len(outputs)
    if len(refs) != n:
        raise ValueError("one ref per output")
    order = sorted(range(n), key=outputs.__getitem__)
    data, offs = refs.data, refs.offsets
    new_offsets = array("I", [0])
    packed = bytearray()
    for i in order:
        packed += data[offs[i] : offs[i + 1]]
        new_offsets.append(len(packed))
    if new_offsets.itemsize != 4:  # pragma: no cover - "I" is 4 bytes on every platform we run
        raise RuntimeError("array('I') is not 32-bit here")
    if _little_endian():
        new_offsets.byteswap()  # stored big-endian
    return b"".join(
        [MAGIC, _U32.pack(n), b"".join(outputs[i] for i in order), new_offsets.tobytes(), packed]
    )


def _little_endian() -> bool:
    return array("I", [1]).tobytes()[0] == 1


class OutputIndex:
    """Read access to an index blob (either version), without copying it into objects."""

    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self._v2 = blob[: len(MAGIC)] == MAGIC
        if self._v2:
            (self._n,) = _U32.unpack_from(blob, len(MAGIC))
            self._outputs_at = len(MAGIC) + 4
            self._offsets_at = self._outputs_at + self._n * OUTPUT_LEN
            self._refs_at = self._offsets_at + (self._n + 1) * 4
            if len(blob) < self._refs_at:
                raise ValueError("truncated output index")
        else:
            self._n = sum(1 for _ in self._v1_rows())

    def __len__(self) -> int:
        return int(self._n)

    def _output(self, i: int) -> bytes:
        at = self._outputs_at + i * OUTPUT_LEN
        return self._blob[at : at + OUTPUT_LEN]

    def _ref(self, i: int) -> tuple[str, int, int]:
        lo = _U32.unpack_from(self._blob, self._offsets_at + 4 * i)[0] + self._refs_at
        key_type, strength, n = _HEAD.unpack_from(self._blob, lo)
        start = lo + _HEAD.size
        return self._blob[start : start + n].decode("utf-8"), key_type, strength

    def refs(self, output: bytes) -> list[tuple[str, int, int]]:
        """(subject id, key type, strength) of every row of ``output``; [] if none."""
        if not self._v2:
            return [(s, t, g) for o, s, t, g in self._v1_rows() if o == output]
        lo, hi = 0, self._n
        while lo < hi:  # the first row whose output is >= the one asked for
            mid = (lo + hi) // 2
            if self._output(mid) < output:
                lo = mid + 1
            else:
                hi = mid
        found = []
        while lo < self._n and self._output(lo) == output:
            found.append(self._ref(lo))
            lo += 1
        return found

    def rows(self) -> Iterator[Row]:
        """Every row (output order for version 2, stored order for version 1)."""
        if not self._v2:
            yield from self._v1_rows()
            return
        for i in range(self._n):
            subject_id, key_type, strength = self._ref(i)
            yield self._output(i), subject_id, key_type, strength

    def distinct_outputs(self) -> list[bytes]:
        """The distinct outputs, sorted."""
        out: list[bytes] = []
        source: Iterable[bytes] = (
            (self._output(i) for i in range(self._n))
            if self._v2
            else sorted(o for o, _, _, _ in self._v1_rows())
        )
        for o in source:
            if not out or out[-1] != o:
                out.append(o)
        return out

    def _v1_rows(self) -> Iterator[Row]:
        data, pos = self._blob, 0
        while pos < len(data):
            output = data[pos : pos + OUTPUT_LEN]
            key_type, strength, n = _HEAD.unpack_from(data, pos + OUTPUT_LEN)
            start = pos + OUTPUT_LEN + _HEAD.size
            yield output, data[start : start + n].decode("utf-8"), key_type, strength
            pos = start + n


def filter_index(blob: bytes, drop: set[str]) -> bytes:
    """The index without the rows of the subjects in ``drop`` (version 2 out)."""
    outputs: list[bytes] = []
    refs = RefPacker()
    for output, subject_id, key_type, strength in OutputIndex(blob).rows():
        if subject_id not in drop:
            outputs.append(output)
            refs.add(subject_id, key_type, strength)
    return build_index(outputs, refs)
