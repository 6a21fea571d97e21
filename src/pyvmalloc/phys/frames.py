"""Frame contents: the bytes of physical memory, stored lazily in chunks of frames.

A frame costs host memory only once written: storage is a dict of numpy chunks of
``CHUNK_FRAMES`` frames each, created on first write.  Reads of never-written frames return
zeros.  Freed frames keep their bytes (stale data, as in real RAM); zeroing is explicit.
The bulk calls (``gather``/``scatter``/``zero`` over arrays of pfns) are vectorised per chunk,
which is what lets vread/vwrite of megabytes run near numpy's copy speed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

CHUNK_SHIFT = 9
CHUNK_FRAMES = 1 << CHUNK_SHIFT  # 512 frames: 2 MiB of host memory per chunk with 4 KiB pages


class FrameStore:
    """Byte storage of ``nr_frames`` frames of ``page_size`` bytes, addressed by pfn."""

    def __init__(self, nr_frames: int, page_size: int) -> None:
        self.nr_frames = nr_frames
        self.page_size = page_size
        self._chunks: dict[int, npt.NDArray[np.uint8]] = {}

    # -- single frames -------------------------------------------------------------------------
    def _chunk(self, pfn: int) -> npt.NDArray[np.uint8]:
        c = pfn >> CHUNK_SHIFT
        chunk = self._chunks.get(c)
        if chunk is None:
            # setdefault, not assignment: two threads creating the same chunk at once must
            # agree on one, or the loser's writes vanish with the chunk it made.
            chunk = self._chunks.setdefault(c, np.zeros((CHUNK_FRAMES, self.page_size), dtype=np.uint8))
        return chunk

    def chunk_of(self, pfn: int, create: bool) -> npt.NDArray[np.uint8] | None:
        """The store row block (``CHUNK_FRAMES`` frames) holding ``pfn``, whose slices are the
        frames' bytes; made (zeroed) when ``create``, else None while never written."""
        return self._chunk(pfn) if create else self._chunks.get(pfn >> CHUNK_SHIFT)

    def frame(self, pfn: int) -> npt.NDArray[np.uint8]:
        """A writable view of one frame's bytes (creates its chunk: use for writes)."""
        self._check(pfn)
        row: npt.NDArray[np.uint8] = self._chunk(pfn)[pfn & (CHUNK_FRAMES - 1)]
        return row

    def peek(self, pfn: int) -> npt.NDArray[np.uint8] | None:
        """A view of one frame's bytes, or None when the frame was never written (all zero)."""
        self._check(pfn)
        chunk = self._chunks.get(pfn >> CHUNK_SHIFT)
        return None if chunk is None else chunk[pfn & (CHUNK_FRAMES - 1)]

    def read(self, phys: int, n: int) -> bytes:
        """``n`` bytes at physical address ``phys`` (may cross frames)."""
        out = bytearray()
        while n > 0:
            pfn, off = divmod(phys, self.page_size)
            take = min(n, self.page_size - off)
            view = self.peek(pfn)
            out += bytes(take) if view is None else view[off:off + take].tobytes()
            phys += take
            n -= take
        return bytes(out)

    def write(self, phys: int, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` at physical address ``phys`` (may cross frames)."""
        src = np.frombuffer(bytes(data), dtype=np.uint8)
        pos = 0
        while pos < len(src):
            pfn, off = divmod(phys + pos, self.page_size)
            take = min(len(src) - pos, self.page_size - off)
            self.frame(pfn)[off:off + take] = src[pos:pos + take]
            pos += take

    # -- many frames at once -------------------------------------------------------------------
    def _groups(self, pfns: npt.NDArray[np.int64]) -> Iterator[tuple[int, npt.NDArray[np.intp], npt.NDArray[np.int64]]]:
        """(chunk number, positions in ``pfns``, rows in that chunk) for each chunk touched."""
        if len(pfns) and (int(pfns.min()) < 0 or int(pfns.max()) >= self.nr_frames):
            raise IndexError("pfn outside physical memory")
        chunks = pfns >> CHUNK_SHIFT
        if len(chunks) and chunks[0] == chunks[-1] and np.all(chunks == chunks[0]):
            yield int(chunks[0]), np.arange(len(pfns)), pfns & (CHUNK_FRAMES - 1)
            return
        order = np.argsort(chunks, kind="stable")
        sorted_chunks = chunks[order]
        cuts = np.flatnonzero(np.diff(sorted_chunks)) + 1
        for part in np.split(order, cuts):
            yield int(chunks[part[0]]), part, pfns[part] & (CHUNK_FRAMES - 1)

    def gather(self, pfns: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
        """The bytes of the frames ``pfns``, as a (len(pfns), page_size) array (a copy)."""
        pfns = np.asarray(pfns, dtype=np.int64)
        out = np.zeros((len(pfns), self.page_size), dtype=np.uint8)
        for c, pos, rows in self._groups(pfns):
            chunk = self._chunks.get(c)
            if chunk is not None:
                out[pos] = chunk[rows]
        return out

    def scatter(self, pfns: npt.NDArray[np.int64], data: npt.NDArray[np.uint8]) -> None:
        """Store row i of ``data`` (len(pfns), page_size) into frame ``pfns[i]``."""
        pfns = np.asarray(pfns, dtype=np.int64)
        for c, pos, rows in self._groups(pfns):
            self._chunk(c << CHUNK_SHIFT)[rows] = data[pos]

    def zero(self, pfns: npt.NDArray[np.int64]) -> None:
        """Zero the frames ``pfns`` (``__GFP_ZERO``); never-written frames cost nothing."""
        pfns = np.asarray(pfns, dtype=np.int64)
        for c, _pos, rows in self._groups(pfns):
            chunk = self._chunks.get(c)
            if chunk is not None:
                chunk[rows] = 0

    # -- accounting ----------------------------------------------------------------------------
    def host_bytes(self) -> int:
        """Host memory held by frame contents."""
        return len(self._chunks) * CHUNK_FRAMES * self.page_size

    def _check(self, pfn: int) -> None:
        if not 0 <= pfn < self.nr_frames:
            raise IndexError(f"pfn {pfn:#x} outside physical memory")
