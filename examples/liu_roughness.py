"""Box-counting dimension of Liu et al.'s trainability boundary against roughness.

    python examples/liu_roughness.py [--criterion bounded] [--size 256] [--steps 1000] [--out outputs]
                                     [--form additive] [--roughness 0.05 0.06] [--view X Y SPAN] [--dry-run]

For each form and roughness it writes a one-frame keyframe file (with a copy of
liu_cosine.py beside it) under <out>/liu-roughness/, runs

    python -m zoomreel dimension <file> --estimator paper --json --quiet

on it, and prints one Markdown table row per file. The views are fixed per
form and criterion, the same for every roughness (docs/science.md says why):

- additive, bounded (the default, Liu et al.'s criterion): lr from 1.002 to
  1.022, start from 0.99 to 1.01 (centre (1.012, 1), span 0.02);
- additive, converged (the paper's measure): lr and start from 0.995 to 1.005
  (centre (1, 1), span 0.01);
- multiplicative, either: lr from 0 to 1.5, start from 0.25 to 1.75 (centre (0.75, 1), span 1.5).
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

FORMS = {
    # form: (multiplicative flag, {criterion: (view centre, span)}, roughness values)
    "additive": (0.0, {"bounded": (("1.012", "1.0"), "0.02"), "converged": (("1.0", "1.0"), "0.01")},
                 [0.02, 0.03, 0.04, 0.045, 0.05, 0.055, 0.06, 0.07, 0.08, 0.085, 0.09, 0.1, 0.2]),
    "multiplicative": (1.0, {"bounded": (("0.75", "1.0"), "1.5"), "converged": (("0.75", "1.0"), "1.5")},
                       [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]),
}

TEMPLATE = """title = "Liu 2024, {form}, roughness {roughness}"

[model]
kind = "python"
module = "liu_cosine.py"
optimizer = "gd"
steps = {steps}
roughness = {roughness}
wavelength = 0.1
multiplicative = {flag}
criterion = "{criterion}"

[plane]
x = "lr"
y = "start"
x_scale = "linear"
y_scale = "linear"

[video]
size = [{size}, {size}]
precision = "float64"

[[keyframe]]
time = 0.0
center = ["{cx}", "{cy}"]
span = {span}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="frame side in pixels")
    ap.add_argument("--steps", type=int, default=1000, help="gradient-descent steps per pixel")
    ap.add_argument("--out", type=Path, default=Path("outputs"), help="where the keyframe files and renders go")
    ap.add_argument("--criterion", choices=("converged", "bounded"), default="bounded",
                    help="when a run counts as trainable: bounded (Liu et al.'s) or converged (the paper's measure)")
    ap.add_argument("--form", choices=tuple(FORMS), action="append", help="only this form (repeatable)")
    ap.add_argument("--roughness", type=float, nargs="+", help="only these roughness values")
    ap.add_argument("--view", nargs=3, metavar=("X", "Y", "SPAN"), help="another view (centre and span)")
    ap.add_argument("--dry-run", action="store_true", help="write the files and print the commands only")
    args = ap.parse_args()

    folder = args.out / "liu-roughness"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "liu_cosine.py", folder / "liu_cosine.py")
    print(f"{args.size} x {args.size} px, {args.steps} steps, float64, criterion {args.criterion}\n")
    print("| form | roughness | dimension (`paper`) | boundary px |")
    print("|---|---|---|---|")
    for form, (flag, views, values) in FORMS.items():
        if args.form and form not in args.form:
            continue
        (cx, cy), span = views[args.criterion]
        if args.view:
            cx, cy, span = args.view
        for r in args.roughness or values:
            path = folder / f"{form}-{args.criterion}-{r}.toml"
            path.write_text(TEMPLATE.format(form=form, roughness=r, steps=args.steps, flag=flag, criterion=args.criterion,
                                            size=args.size, cx=cx, cy=cy, span=span))
            cmd = [sys.executable, "-m", "zoomreel", "dimension", str(path), "--estimator", "paper",
                   "--json", "--quiet", "--out", str(args.out)]
            if args.dry_run:
                print(" ".join(cmd))
                continue
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                last = (run.stderr.strip().splitlines() or ["(no message)"])[-1]
                print(f"| {form} | {r} | - | - |  {last}")
                continue
            res = json.loads(run.stdout)
            frame = res["frames"][0]
            print(f"| {form} | {r} | {res['dimension']:.2f} | {frame['boundary_pixels']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
