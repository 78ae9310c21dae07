"""Where perturbation's references go (zoomreel/engine/placement.py), and
that training several references' pixels together changes no pixel's bits."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from zoomreel import path, scene
from zoomreel.engine import perturb, placement, reference
from zoomreel.model import Model
from zoomreel.view import View


def test_the_lattice_is_each_cells_centre_and_covers_a_ragged_edge():
    cells = placement.Cells((20, 10), cell=8)  # 3 x 2 cells, the last column and row narrower
    assert cells.shape == (2, 3)
    lat = cells.lattice()
    cols, rows = lat % 20, lat // 20
    assert sorted(set(cols)) == [4, 12, 19] and sorted(set(rows)) == [4, 9]
    assert set(zip(*cells.where(lat))) == {(r, c) for r in range(2) for c in range(3)}


def test_a_pixel_tries_its_own_cells_reference_then_the_neighbours_then_asks_for_a_new_one():
    cells = placement.Cells((24, 8), cell=8)  # one row of three cells
    owns = cells.owned(4)
    cells.record(owns, np.array([4 * 24 + 4]), 2)  # reference 2 trained the left cell's pixel
    cells.record(owns, np.array([4 * 24 + 12, 4 * 24 + 13]), 1)  # reference 1, two pixels of the middle cell
    cells.record(owns, np.array([4 * 24 + 14]), 3)
    cells.record(owns, np.array([4 * 24 + 20]), 0)  # reference 0, the right cell
    px = np.array([2 * 24 + 10])  # a pixel of the middle cell
    untried = np.ones((1, 4), dtype=bool)
    assert cells.candidates(px, owns, untried)[0] == 1  # its own cell's, the one that trained most there
    untried[0, 1] = False
    assert cells.candidates(px, owns, untried)[0] == 3
    untried[0, 3] = False
    assert cells.candidates(px, owns, untried)[0] in (2, 0)  # then a neighbouring cell's
    untried[0, [0, 2]] = False
    assert cells.candidates(px, owns, untried)[0] == -1  # none left: a new reference
    # a pixel far from every trained cell has none either
    assert placement.Cells((40, 8), cell=8).candidates(np.array([39]), np.pad(owns, ((0, 0), (0, 2), (0, 0))),
                                                          np.ones((1, 4), dtype=bool))[0] == -1


def test_several_references_trained_together_give_each_pixel_its_bits_alone():
    # Two references and their pixels in one segment loop and one measure
    # (what a frame's passes do) against each reference's pixels on their own.
    model = Model(width=8, steps=40)
    view = View((Decimal("1.0"), Decimal("1.6516728947948")), Decimal("1e-9"), (6, 4))
    prec = perturb._prec(view)
    digits = reference.digits_needed(perturb._finest(model, view), model.steps)
    xs, ys = path.axis_coords(view, prec)
    parts = []
    for (c, r), pixels in (((1, 1), range(0, 13)), ((4, 2), range(13, 24))):
        ref = perturb.orbit(model, xs[c], ys[r], digits, prec)
        hx, hy = perturb._hyper(xs[c], True, prec), perturb._hyper(ys[r], True, prec)
        da = perturb._offsets([perturb._hyper(xs[p % 6], True, prec) for p in pixels], hx, prec)
        db = perturb._offsets([perturb._hyper(ys[p // 6], True, prec) for p in pixels], hy, prec)
        parts.append((ref, da, db))
    (vals, glitched, margins), _ = perturb.train_many(model, parts, chunk=8)
    for (ref, da, db), v, g, m in zip(parts, vals, glitched, margins):
        alone = perturb.train_offsets(model, ref, da, db, chunk=8)
        np.testing.assert_array_equal(v, alone[0])
        np.testing.assert_array_equal(g, alone[1])
        np.testing.assert_array_equal(m, alone[3])
    both = np.concatenate(vals)
    assert (both < 0).any() and (both > 0).any()  # the frame straddles the boundary


def test_a_view_dd_cannot_place_may_make_more_references():
    # dd is the last resort for pixels no reference trains; past where it can
    # tell neighbouring pixels apart it would train them a few spacings off,
    # so there a view may make more references before falling back to it.
    model = Model(width=8, steps=40)
    centre = (Decimal("1.0"), Decimal("1.6516728947948"))
    assert perturb.budget(model, View(centre, Decimal("1e-20"), (64, 64))) == perturb.MAX_REFERENCES
    assert perturb.budget(model, View(centre, Decimal("1e-31"), (64, 64))) == perturb.DEEP_MAX_REFERENCES


@pytest.mark.slow
def test_a_views_pixels_do_not_depend_on_what_was_asked_of_it_before():
    # The view's plan is shared by every call on it but never changed by
    # them: the same pixels come out with the same bits whatever ran first,
    # though the whole frame, asked for in between, makes references of its
    # own (the stripes along the deep zoom's edges).
    s = scene.load(Path(__file__).parent.parent / "keyframes" / "deep.toml")
    view = path.view_at(s, s.duration, (32, 18))
    some = np.arange(0, 32 * 18, 5)
    perturb._PLANS.clear()
    first = perturb.train_view(s.model, view, some)
    whole = perturb.train_view(s.model, view)
    assert whole.references > first.references
    again = perturb.train_view(s.model, view, some)
    np.testing.assert_array_equal(first.values, again.values)
    np.testing.assert_array_equal(first.glitched, again.glitched)
