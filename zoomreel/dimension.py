"""Dimension: the box-counting dimension of the trainability boundary.

The maths is pure NumPy:

- :func:`boundary` marks the cells of a frame whose 2x2 neighbourhood of
  pixels holds both signs (converged and diverged);
- :func:`box_counts` counts the boxes of each size that hold part of a mask;
- :func:`fit` fits log N(s) against log s; the dimension is minus the slope.

:func:`measure_render` walks a render's frames through the work layer
(:mod:`zoomreel.work`: from the cache, training only the missing ones) and
fits each; :func:`plot` draws the figures into a PNG.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import atomic

MIN_BOUNDARY = 100  # boundary cells a frame needs before its fit means anything
MIN_SIZES = 4  # box sizes a fit needs
LARGEST_FRACTION = 8  # the largest box is at most 1/8 of the shorter side


class TooFewBoundaryPixels(ValueError):
    """The mask holds too little boundary for a box-counting fit."""


def boundary(raw: np.ndarray) -> np.ndarray:
    """Cells (H-1, W-1) whose four corner pixels hold both signs.

    ``raw`` is a frame's measure: negative = converged, positive = diverged.
    """
    neg = np.asarray(raw) < 0
    corners = (neg[:-1, :-1], neg[1:, :-1], neg[:-1, 1:], neg[1:, 1:])
    any_neg = corners[0] | corners[1] | corners[2] | corners[3]
    all_neg = corners[0] & corners[1] & corners[2] & corners[3]
    return any_neg & ~all_neg


def box_sizes(shape: tuple[int, int]) -> list[int]:
    """Powers of two from 1 up to 1/LARGEST_FRACTION of the shorter side."""
    top = min(shape) // LARGEST_FRACTION
    sizes = [1]
    while sizes[-1] * 2 <= top:
        sizes.append(sizes[-1] * 2)
    return sizes


def box_counts(mask: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Number of s x s boxes holding at least one True, for each size s.

    The mask is first cropped about its centre to a multiple of the largest
    size, so every size tiles the same region with whole boxes.
    """
    mask = np.asarray(mask, dtype=bool)
    big = max(sizes)
    H, W = (d - d % big for d in mask.shape)
    if H == 0 or W == 0:
        raise TooFewBoundaryPixels(f"the mask {mask.shape} is smaller than the largest box {big}")
    i0 = (mask.shape[0] - H) // 2
    j0 = (mask.shape[1] - W) // 2
    m = mask[i0 : i0 + H, j0 : j0 + W]
    counts = []
    for s in sizes:
        blocks = m.reshape(H // s, s, W // s, s).any(axis=(1, 3))
        counts.append(int(blocks.sum()))
    return np.array(counts, dtype=np.int64)


@dataclass
class Fit:
    dimension: float
    r2: float  # coefficient of determination of the log-log fit
    sizes: list[int]
    counts: list[int]
    intercept: float  # log N at s = 1 on the fitted line
    cells: int  # True cells in the mask

    def to_json(self) -> dict:
        return asdict(self)


def fit(mask: np.ndarray, sizes: list[int] | None = None) -> Fit:
    """Box-counting dimension of a mask: minus the slope of log N(s) against log s."""
    mask = np.asarray(mask, dtype=bool)
    sizes = list(sizes or box_sizes(mask.shape))
    cells = int(mask.sum())
    if len(sizes) < MIN_SIZES:
        raise TooFewBoundaryPixels(
            f"a {mask.shape[1]}x{mask.shape[0]} mask allows only {len(sizes)} box sizes, {MIN_SIZES} needed"
        )
    if cells < MIN_BOUNDARY:
        raise TooFewBoundaryPixels(f"only {cells} boundary pixels, {MIN_BOUNDARY} needed")
    counts = box_counts(mask, sizes)
    if np.any(counts == 0):
        raise TooFewBoundaryPixels("the boundary lies only at the frame's edge")
    x = np.log(np.array(sizes, dtype=np.float64))
    y = np.log(counts.astype(np.float64))
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss if ss > 0 else 1.0
    return Fit(float(-slope), r2, sizes, [int(c) for c in counts], float(intercept), cells)


# --------------------------------------------------------------------------
# The paper's estimator (Sohl-Dickstein 2024, Table 1), restated


PAPER_SIZES = 10  # box sizes, log-spaced from PAPER_SMALLEST px to the shorter side
PAPER_SMALLEST = 10


def paper_sizes(shape: tuple[int, int]) -> list[int]:
    """10 sizes spaced logarithmically from 10 px to the shorter side, as
    integers, duplicates dropped."""
    short = min(shape)
    if short < PAPER_SMALLEST:
        return []
    return sorted({int(s) for s in np.geomspace(PAPER_SMALLEST, short, PAPER_SIZES)})


def paper_counts(edge: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Boxes of each size, tiled from the first row and column (the last ones
    in each direction partial), that hold both edge and non-edge pixels."""
    edge = np.asarray(edge, dtype=bool)
    H, W = edge.shape
    counts = []
    for s in sizes:
        rows, cols = np.arange(0, H, s), np.arange(0, W, s)
        inside = np.add.reduceat(np.add.reduceat(edge.astype(np.int64), rows, axis=0), cols, axis=1)
        area = np.outer(np.diff(np.append(rows, H)), np.diff(np.append(cols, W)))
        counts.append(int(((inside > 0) & (inside < area)).sum()))
    return np.array(counts, dtype=np.int64)


def local_slopes(sizes, counts) -> np.ndarray:
    """-d log N / d log s at each size: central differences inside, one-sided
    at the two ends. Sizes whose count is 0 are left out."""
    s = np.asarray(sizes, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    keep = n > 0
    x, y = np.log(s[keep]), np.log(n[keep])
    if x.size < 2:
        return np.array([])
    d = np.empty_like(x)
    d[1:-1] = (y[2:] - y[:-2]) / (x[2:] - x[:-2])
    d[0] = (y[1] - y[0]) / (x[1] - x[0])
    d[-1] = (y[-1] - y[-2]) / (x[-1] - x[-2])
    return -d


@dataclass
class PaperSlopes:
    sizes: list[int]
    counts: list[int]
    slopes: list[float]  # one per size with a non-zero count

    @property
    def dimension(self) -> float:
        """The median of this image's slopes (a sequence pools every image's)."""
        return float(np.median(self.slopes))

    def to_json(self) -> dict:
        return {**asdict(self), "dimension": self.dimension}


def paper(edge: np.ndarray) -> PaperSlopes:
    """The paper's local box-counting slopes of one image's edge mask."""
    edge = np.asarray(edge, dtype=bool)
    if not edge.any():
        raise TooFewBoundaryPixels("no boundary pixels")
    sizes = paper_sizes(edge.shape)
    counts = paper_counts(edge, sizes)
    slopes = local_slopes(sizes, counts)
    if slopes.size < 2:
        raise TooFewBoundaryPixels(f"only {slopes.size} box sizes hold both edge and non-edge pixels")
    return PaperSlopes(sizes, [int(c) for c in counts], [float(v) for v in slopes])


def paper_dimension(images: list[PaperSlopes]) -> float:
    """The paper's dimension of a zoom sequence: the median of all slopes of all images."""
    return float(np.median(np.concatenate([np.asarray(p.slopes) for p in images])))


def tile_dimensions(edge: np.ndarray, tile: int, estimator: str = "paper", min_cells: int = MIN_BOUNDARY) -> np.ndarray:
    """Each whole ``tile`` x ``tile`` block's dimension of an edge mask, by
    ``estimator`` ("paper": the median of its local slopes; "fit"), NaN where
    a block holds fewer than ``min_cells`` edge cells or cannot be fitted.
    Block (i, j) covers rows i*tile.. and columns j*tile.. of the mask."""
    edge = np.asarray(edge, dtype=bool)
    rows, cols = edge.shape[0] // tile, edge.shape[1] // tile
    out = np.full((rows, cols), np.nan)
    for i in range(rows):
        for j in range(cols):
            block = edge[i * tile : (i + 1) * tile, j * tile : (j + 1) * tile]
            if block.sum() < min_cells:
                continue
            try:
                out[i, j] = (paper(block) if estimator == "paper" else fit(block)).dimension
            except TooFewBoundaryPixels:
                pass
    return out


def summarize(dims: list[float]) -> dict:
    """Median and spread of per-frame dimensions."""
    a = np.asarray(dims, dtype=np.float64)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "std": float(a.std()),
        "min": float(a.min()),
        "max": float(a.max()),
        "fitted": int(a.size),
    }


# --------------------------------------------------------------------------
# A whole render


@dataclass
class FrameDimension:
    frame: int
    time: float
    span: float
    depth: float  # decades zoomed in since the first keyframe
    boundary_pixels: int
    fit: "Fit | PaperSlopes | None"
    skipped: str | None = None

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "fit"}
        if self.fit is not None:
            d.update(self.fit.to_json())
            d.pop("cells", None)
        return d


@dataclass
class RenderDimension:
    file: str
    draft: bool
    size: tuple[int, int]
    steps: int
    estimator: str = "fit"
    frames: list[FrameDimension] = field(default_factory=list)
    summary: dict | None = None

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "draft": self.draft,
            "size": list(self.size),
            "steps": self.steps,
            "estimator": self.estimator,
            "frames_used": len(self.frames),
            **(self.summary or {}),
            "frames": [f.to_json() for f in self.frames],
        }


def frame_indices(n_frames: int, wanted: int | None) -> list[int]:
    """Every frame, or ``wanted`` frames evenly spread from the first to the last."""
    if not wanted or wanted >= n_frames:
        return list(range(n_frames))
    if wanted == 1:
        return [n_frames - 1]
    return sorted({round(i * (n_frames - 1) / (wanted - 1)) for i in range(wanted)})


ESTIMATORS = ("fit", "paper")


def measure_render(plan, indices: list[int], force: bool = False, rep=None, executor=None,
                   estimator: str = "fit") -> RenderDimension:
    """Measure every chosen frame of a render (cached frames reused, missing ones trained).

    ``estimator``: "fit" (a least-squares fit of log N against log s over
    powers of two up to 1/8 of the frame: each frame its dimension, the
    summary their median), or "paper" (the paper's local slopes over 10
    log-spaced sizes: the summary's dimension is the median of all slopes of
    all frames, as the paper took it over a zoom sequence).
    """
    from . import path
    from .errors import UserError
    from .work import Reporter

    W, H = plan.size
    if estimator == "paper":
        if len(paper_sizes((H - 1, W - 1))) < 2:
            raise UserError(f"{W}x{H} frames are too small for the paper's estimator", str(plan.scene.path.name),
                            f"use frames of at least {PAPER_SMALLEST + 2} px a side")
    elif len(box_sizes((H - 1, W - 1))) < MIN_SIZES:
        need = LARGEST_FRACTION * 2 ** (MIN_SIZES - 1) + 1
        raise UserError(
            f"{W}x{H} frames are too small to box-count: the shorter side needs at least {need} px",
            str(plan.scene.path.name),
            "drop --draft or raise [video] size",
        )
    rep = rep or Reporter()
    first = plan.scene.keyframes[0].span
    res = RenderDimension(str(plan.scene.path), plan.draft, plan.size, plan.scene.model.steps, estimator)
    images = (level_images(plan, indices, force, rep, executor) if plan.mode == "pyramid"
              else frame_images(plan, indices, force, rep, executor))
    for k, raw, span in images:
        edge = boundary(raw)
        fd = FrameDimension(
            frame=k,
            time=float(path.frame_time(k, plan.fps)),
            span=float(span),
            depth=float((first / span).log10()),
            boundary_pixels=int(edge.sum()),
            fit=None,
        )
        try:
            fd.fit = paper(edge) if estimator == "paper" else fit(edge)
        except TooFewBoundaryPixels as e:
            fd.skipped = str(e)
        res.frames.append(fd)
    dims = [f.fit.dimension for f in res.frames if f.fit is not None]
    if not dims:
        reasons = sorted({f.skipped for f in res.frames})
        raise UserError(
            f"too few boundary pixels to fit a dimension, in {_frames(len(res.frames))}: {reasons[0]}",
            str(plan.scene.path.name),
            "zoom onto the boundary between the phases (see 'zoomreel locate')",
        )
    res.summary = summarize(dims)
    # the render's one number: the median of the frames' dimensions, or for
    # the paper's estimator the median of every slope of every frame
    res.summary["dimension"] = (
        paper_dimension([f.fit for f in res.frames if f.fit is not None]) if estimator == "paper" else res.summary["median"]
    )
    return res


def frame_images(plan, indices: list[int], force: bool, rep, executor):
    """Frames mode: (frame, raw, span) of each chosen frame, one at a time
    (trained where the cache lacks them)."""
    from .work import FrameUnits, train_missing

    units = FrameUnits(plan)
    units.cache.prepare()
    keys = train_missing(units, indices, force, rep, executor).keys
    for k in indices:
        yield k, units.fetch(k, keys[k], executor).raw, plan.view(k).span


def level_images(plan, ks: list[int], force: bool, rep, executor):
    """Pyramid mode: each level that frames ``ks`` read as their fine level,
    once: (frame, raw block, span) of its lattice block under the first such
    frame, in frame order; missing tiles are trained."""
    from . import compose
    from .pyramid import spacing
    from .work import TileReader, train_tiles

    first: dict[int, int] = {}
    for k in ks:
        first.setdefault(plan.frame_plan(k).fine.level, k)
    chosen = sorted(first.values())
    reader = TileReader(train_tiles(plan, chosen, force, rep, executor).units, executor)
    for k in chosen:
        fp = plan.frame_plan(k).fine
        reader.keep({fp.level})
        raw = compose.mosaic(fp, reader)
        yield k, raw, spacing(fp.level) * raw.shape[1]


def levels_plan(plan):
    """The render's plan turned into the paper's kind of sequence: one frame per
    2x level, all centred on the last keyframe's view, from a span of at least 6
    down to that view (:func:`zoomreel.path.levels`)."""
    from . import path

    last = plan.scene.keyframes[-1]
    return plan.with_views(path.levels(last.center, last.span, plan.size))


def _frames(n: int) -> str:
    return "the one frame" if n == 1 else f"all {n} frames"


def plot(result: RenderDimension, dest: Path) -> None:
    """Log-log box counts with their fits, and the dimension against depth, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fitted = [f for f in result.frames if f.fit is not None]
    med = result.summary["dimension"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100)
    cmap = plt.get_cmap("viridis")
    depths = [f.depth for f in fitted]
    lo, hi = min(depths), max(depths)
    for f in fitted:
        c = cmap(0.0 if hi == lo else (f.depth - lo) / (hi - lo))
        s = np.array(f.fit.sizes, dtype=float)
        ax1.plot(s, f.fit.counts, "o" if isinstance(f.fit, Fit) else "o-", color=c, ms=3, lw=0.8)
        if isinstance(f.fit, Fit):
            ax1.plot(s, np.exp(f.fit.intercept) * s ** (-f.fit.dimension), "-", color=c, lw=0.8)
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel("box size s (pixels)")
    ax1.set_ylabel("boxes holding boundary N(s)")
    ax1.set_title(f"box counts, {len(fitted)} frames (colour = depth)")
    ax2.plot(depths, [f.fit.dimension for f in fitted], "o-", ms=3)
    ax2.axhline(med, color="k", ls="--", lw=0.8, label=f"dimension {med:.3f}")
    ax2.set_xlabel("zoom depth (decades)")
    ax2.set_ylabel("box-counting dimension")
    ax2.set_title("dimension against depth")
    ax2.legend()
    W, H = result.size
    fig.suptitle(f"{Path(result.file).name}: {W}x{H}, {result.steps} steps{' (draft)' if result.draft else ''}")
    save_png(fig, dest)


def save_png(fig, dest: Path) -> None:
    """Write a Matplotlib figure to ``dest`` as a PNG, atomically, and close it."""
    import matplotlib.pyplot as plt

    import io

    fig.tight_layout()
    buf = io.BytesIO()  # in memory first: a pipe or device takes the bytes as they are (zoomreel.atomic)
    try:
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    atomic.write_bytes(dest, buf.getvalue())

