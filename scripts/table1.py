"""One row of the paper's Table 1, measured the paper's way (docs/science.md).

For each seed: a target found by `locate --rule RULE` from the file's first
keyframe down to the final span, then one SIZE x SIZE image per 2x level
centred on it, from a span of at least 6 down to the final span, and both
estimators on those images (zoomreel/table1.py). Images are cached under
--out like frames, so a second run only reads them.

    python scripts/table1.py keyframes/tanh.toml --size 128 --steps 500 \
        --seeds 0-4 --final 0.0703125 [--rule busiest] [--locate-size 64] \
        [--precision float64] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from zoomreel.errors import UserError
from zoomreel.precision_names import PRECISIONS


def seeds(text: str) -> list[int]:
    """'0-4' or '0,2,5' as a list of seeds."""
    out = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise UserError(f"bad seeds {text!r}", "--seeds", "give a range like 0-4 or a list like 0,2,5") from None
    if not out or min(out) < 0:
        raise UserError(f"bad seeds {text!r}", "--seeds", "give seeds of 0 or more")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path, help="keyframe file (.toml): the model, and its first keyframe as locate's start")
    ap.add_argument("--size", type=int, default=512, help="image side in pixels")
    ap.add_argument("--steps", type=int, default=500, help="training steps (locate uses the same)")
    ap.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 0,3")
    ap.add_argument("--final", default="0.0703125", help="the sequence's final span (locate's depth)")
    ap.add_argument("--rule", default="busiest", help="locate's rule: busiest | balanced")
    ap.add_argument("--locate-size", type=int, default=64, help="locate's grid per level")
    ap.add_argument("--precision", default="float64",
                    help="precision mode of every image, locate's too: float64 (the paper's, the default) | auto (the file's ladder) | float32 | dd")
    ap.add_argument("--out", type=Path, default=None, help="output folder (cache) instead of outputs/")
    ap.add_argument("--json", action="store_true", help="print the row as one JSON object")
    a = ap.parse_args(argv)
    from zoomreel import engine, locate, scene, table1

    try:
        try:
            final = Decimal(a.final)
            if not final.is_finite() or final <= 0:
                raise InvalidOperation
        except InvalidOperation:
            raise UserError(f"bad final span {a.final!r}", "--final", "give a positive span, e.g. 0.0703125") from None
        if a.precision not in PRECISIONS:
            raise UserError(f"unknown precision {a.precision!r}", "--precision", "use " + " or ".join(PRECISIONS))
        if a.rule not in locate.RULES:
            raise UserError(f"unknown rule {a.rule!r}", "--rule", "use " + " or ".join(locate.RULES))
        engine.configure()
        s = scene.load(a.file)

        def show(r):
            if not a.json:
                print(f"seed {r.seed}: paper {_f(r.paper)}  fit {_f(r.fit)}  {r.levels} levels  target ({r.target[0]}, {r.target[1]})"
                      f"  {r.seconds:.0f} s", flush=True)

        row = table1.measure(s, seeds(a.seeds), a.steps, a.size, final, a.rule, a.locate_size, a.out, on_seed=show,
                             precision=a.precision)
    except UserError as e:
        print(e.line(), file=sys.stderr)
        return 2
    d = row.to_json()
    if a.json:
        print(json.dumps(d))
        return 0
    p, f = d["paper_estimator"], d["fit_estimator"]
    print(f"{row.condition}: paper's value {_f(row.paper_value)}; paper's estimator median {_f(p['median'])} "
          f"(seeds {_f(p['min'])}-{_f(p['max'])}); fit median {_f(f['median'])} "
          f"(seeds {_f(f['min'])}-{_f(f['max'])}); {row.size} px, {row.steps} steps, final span {row.final}; "
          f"{row.seconds:.0f} s on {row.machine}")
    return 0


def _f(x) -> str:
    return "-" if x is None else f"{x:.2f}" if x == round(x, 2) else f"{x:.3f}"


if __name__ == "__main__":
    sys.exit(main())
