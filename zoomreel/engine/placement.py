"""Where a view's references go, and which one each pixel tries next.

Deep in the network's boundary the pixels of one frame follow a few
different itineraries: bands of parallel edges, each band's pixels agreeing
for the first hundred or so steps and then parting from the other bands'
(docs/precision.md, "Choosing references"). A pixel trained from a
reference in another band glitches when they part, and is trained again.
Training a frame from its centre alone, and then from one new reference per
pass, peels one band per pass, so most pixels are trained several times.

So perturbation first trains a coarse lattice of the view, the centre pixel
of each :data:`CELL` x :data:`CELL` cell, and learns there which references
train each cell. Every other pixel then starts from a reference that
trained its own cell; a pixel that still glitches tries those of the
neighbouring cells, nearest first, before a new reference is made for it.
This module holds that bookkeeping on flat pixel indices (row by row from
the lowest y), in NumPy only; :func:`.perturb.train_view` trains.
"""

from __future__ import annotations

import numpy as np

CELL = 8  # pixels per side of a lattice cell: the lattice is about 1/64 of a frame
# a pixel's own cell, then the four that share an edge with it, then the corners
NEIGHBOURS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


class Cells:
    """A W x H view cut into cells of ``cell`` x ``cell`` pixels (the last
    row and column of cells may be narrower)."""

    def __init__(self, size: tuple[int, int], cell: int = CELL):
        self.W, self.H = size
        self.cell = cell
        self.shape = (-(-self.H // cell), -(-self.W // cell))

    def where(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cell (row, column) of each pixel."""
        flat = np.asarray(flat)
        return flat // self.W // self.cell, flat % self.W // self.cell

    def lattice(self) -> np.ndarray:
        """The centre pixel of each cell (flat indices, ascending)."""
        half = self.cell // 2
        r = np.minimum(np.arange(self.shape[0]) * self.cell + half, self.H - 1)
        c = np.minimum(np.arange(self.shape[1]) * self.cell + half, self.W - 1)
        return (r[:, None] * self.W + c[None, :]).ravel()

    def owned(self, refs: int) -> np.ndarray:
        """A fresh (cells down, cells across, refs) count of the pixels each
        reference trained in each cell: what :meth:`candidates` reads."""
        return np.zeros(self.shape + (refs,), dtype=np.int64)

    def record(self, owns: np.ndarray, flat: np.ndarray, k: int) -> None:
        """Pixels ``flat`` were trained by reference k."""
        cy, cx = self.where(flat)
        np.add.at(owns, (cy, cx, k), 1)

    def candidates(self, flat: np.ndarray, owns: np.ndarray, untried: np.ndarray) -> np.ndarray:
        """For pixels ``flat``, the reference each tries next: of those that
        trained pixels of its own cell, or else of the nearest neighbouring
        cell that has one (edges before corners), the one that trained most
        there, among those the pixel has not tried (``untried``: (pixels,
        references) bool); -1 where there is none."""
        flat = np.asarray(flat)
        pick = np.full(flat.size, -1)
        H, W = self.shape
        cy, cx = self.where(flat)
        for dy, dx in NEIGHBOURS:
            y, x = cy + dy, cx + dx
            open_ = (pick < 0) & (y >= 0) & (y < H) & (x >= 0) & (x < W)
            if not open_.any():
                continue
            n = owns[y[open_], x[open_]] * untried[open_]
            best = n.argmax(axis=1)
            got = n[np.arange(best.size), best] > 0
            pick[np.flatnonzero(open_)[got]] = best[got]
        return pick

    def nearest_centroid(self, flat: np.ndarray) -> int:
        """The pixel among ``flat`` nearest their centroid: where a new reference goes."""
        flat = np.asarray(flat)
        c, r = flat % self.W, flat // self.W
        return int(flat[np.argmin((c - c.mean()) ** 2 + (r - r.mean()) ** 2)])
