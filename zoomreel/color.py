"""Colour: raw measure -> RGB, by the paper's rank (CDF) restretch.

Converged pixels (negative measure) are spread uniformly by rank over the cool
half of a diverging palette, diverged pixels over the warm half, with a gap at
the middle so the two phases never share a colour. Paler means faster.

Temporal stability: each frame's rank reference is a set of quantiles of
log|measure| per phase (:func:`summary`, stored with the cached frame). A frame
is coloured against the weighted mean of its neighbours' quantile functions
(:func:`blend`), so colours glide instead of flickering as the view zooms.

Pure NumPy; never trains anything, so a palette change reuses every frame.
"""

from __future__ import annotations

import numpy as np

Q = 129  # quantile levels per phase
GAP = 0.25  # half-width of the unused middle of the [-1, 1] colour range
LEVELS = np.linspace(0.0, 1.0, Q)

# Control points from position 0 (slow divergence) to 1 (slow convergence).
_PALETTES = {
    "spectral": [
        (0.00, (110, 0, 40)),
        (0.12, (200, 40, 60)),
        (0.25, (240, 110, 60)),
        (0.375, (252, 200, 110)),
        (0.50, (250, 250, 200)),
        (0.625, (205, 235, 155)),
        (0.75, (110, 200, 160)),
        (0.88, (45, 130, 190)),
        (1.00, (60, 40, 140)),
    ],
    "coolwarm": [
        (0.00, (100, 0, 20)),
        (0.25, (215, 85, 70)),
        (0.375, (245, 180, 150)),
        (0.50, (245, 240, 235)),
        (0.625, (170, 200, 240)),
        (0.75, (90, 150, 220)),
        (1.00, (20, 30, 110)),
    ],
}
PALETTE_NAMES = tuple(_PALETTES)
DEFAULT_PALETTE = PALETTE_NAMES[0]


def lut(name: str, n: int = 1024) -> np.ndarray:
    pts = _PALETTES[name]
    pos = np.array([p for p, _ in pts])
    rgb = np.array([c for _, c in pts], dtype=np.float64)
    x = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(x, pos, rgb[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


def summary(raw: np.ndarray) -> dict:
    """Rank reference of one frame: quantiles of log10|measure| per phase."""
    raw = np.asarray(raw, dtype=np.float64).ravel()
    out = {}
    for name, vals in (("conv", -raw[raw < 0]), ("div", raw[raw > 0])):
        vals = vals[np.isfinite(vals) & (vals > 0)]
        out[name] = np.quantile(np.log10(vals), LEVELS).tolist() if vals.size else None
    return out


def blend(summaries: list[dict], weights: list[float]) -> dict:
    """Weighted mean of quantile functions, per phase, skipping empty phases."""
    out = {}
    for name in ("conv", "div"):
        acc, wsum = np.zeros(Q), 0.0
        for s, w in zip(summaries, weights):
            if s.get(name) is not None:
                acc += w * np.asarray(s[name])
                wsum += w
        out[name] = (acc / wsum).tolist() if wsum > 0 else None
    return out


def window_weights(k: int, n_frames: int, radius: int) -> tuple[list[int], list[float]]:
    """Frames around k and their triangular weights."""
    ks = list(range(max(0, k - radius), min(n_frames, k + radius + 1)))
    return ks, [float(radius + 1 - abs(j - k)) for j in ks]


def _rank(vals: np.ndarray, q) -> np.ndarray:
    q = np.maximum.accumulate(np.asarray(q, dtype=np.float64))
    if q[-1] <= q[0]:
        return np.full(vals.shape, 0.5)
    return np.interp(vals, q, LEVELS)


def positions(raw: np.ndarray, ref: dict) -> np.ndarray:
    """Palette position per pixel, 0..1: 0 = slow divergence, 1 = slow convergence."""
    raw = np.asarray(raw, dtype=np.float64)
    t = np.zeros(raw.shape)
    with np.errstate(all="ignore"):
        conv = raw < 0
        div = ~conv
        mag = np.log10(np.abs(raw))
    for mask, name, sign in ((conv, "conv", -1.0), (div, "div", 1.0)):
        if not mask.any():
            continue
        q = ref.get(name)
        r = _rank(mag[mask], q) if q is not None else np.full(int(mask.sum()), 0.5)
        r = np.where(np.isfinite(r), r, 1.0)
        t[mask] = sign * (GAP + (1.0 - GAP) * r)
    return (1.0 - t) / 2.0


def colorize(raw: np.ndarray, ref: dict | None = None, palette: str = DEFAULT_PALETTE) -> np.ndarray:
    """RGB uint8 image (H, W, 3), y growing upwards as on a plot."""
    ref = ref if ref is not None else summary(raw)
    table = lut(palette)
    p = positions(raw, ref)
    img = table[np.clip((p * (len(table) - 1)).round().astype(int), 0, len(table) - 1)]
    return np.ascontiguousarray(img[::-1])
