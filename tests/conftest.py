import os
import sys
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

# Compiled programs go to a folder of this test run, not the user's cache
# (set before zoomreel is imported; the CLI subprocesses inherit it).
os.environ["ZOOMREEL_JAX_CACHE"] = tempfile.mkdtemp(prefix="zoomreel-jax-")

TANH_TOML = """
[model]
steps = {steps}
{model_extra}

[video]
size = [{w}, {h}]
fps = {fps}
{video_extra}

{keyframes}
"""

ZOOM = """
[[keyframe]]
time = 0.0
center = [1.5, 1.5]
span = 9.0

[[keyframe]]
time = {t1}
center = ["2.5", "2.1298"]
span = {span1}
"""


def scene_text(steps=30, w=16, h=16, fps=4, t1="1.0", span1="1.0", model_extra="", video_extra="", keyframes=None):
    """A keyframe file: tanh, full batch, zooming from the standard view towards (2.5, 2.1298)."""
    return TANH_TOML.format(
        steps=steps, w=w, h=h, fps=fps, model_extra=model_extra, video_extra=video_extra,
        keyframes=keyframes if keyframes is not None else ZOOM.format(t1=t1, span1=span1),
    )


# The tier of whole files (pyproject.toml registers the markers); single
# tests carry their own marks.
TIERS = {
    "test_explore_browser.py": ("browser", "slow"),
    "test_ray.py": ("ray", "slow"),
    "test_ray_local.py": ("ray", "slow"),
    "test_explore.py::test_a_newer_view_supersedes_the_one_in_training": ("slow",),
    # renders through the CLI to full disks, devices and pipes: 5 to 14 s each
    **{f"test_writers.py::{name}": ("slow",) for name in (
        "test_a_plot_to_stdout_is_the_png_alone_and_the_json_goes_to_stderr",
        "test_a_full_disk_keeps_the_old_video_and_the_cache_and_says_so",
        "test_every_writer_on_a_full_disk_keeps_the_old_file",
        "test_a_device_is_written_into_never_replaced",
        "test_a_plot_into_a_device_is_one_line",
        "test_dev_stdout_is_the_open_descriptor_whatever_it_is",
        "test_a_file_size_limit_fails_the_encoder_like_a_full_disk_and_keeps_the_old_video")},
    "test_perturb.py::test_a_frame_past_float64_is_perturbed_and_says_how_much_was_redone": ("slow",),
}


# CI runs the suite on two pytest-xdist workers (.ci/run: -n 2 --dist loadgroup).
# A group runs on one worker, in order: a file is a group (its module fixtures
# are made once), the two Ray files are one (a local runtime must not meet the
# cluster of test_ray.py), and the files named here split by test function.
SHARED_GROUPS = {"test_ray.py": "ray", "test_ray_local.py": "ray"}
SPLIT_BY_FUNCTION = {"test_dd_boundary.py"}


def group_of(item) -> str:
    f = item.path.name
    if f in SPLIT_BY_FUNCTION:
        return f"{f}::{item.originalname}"
    return SHARED_GROUPS.get(f, f)


# The longest groups (minutes each on the 2-core CI machine) are dealt out
# first, so that the two workers finish together rather than one running the
# Ray group alone at the end; the rest keep their order.
FIRST = ["ray", "test_dd_boundary.py::test_dd_frame_on_the_boundary_matches_mpmath_pixel_by_pixel",
         "test_science.py", "test_dd_boundary.py::test_dd_bisection_finds_the_boundary_where_mpmath_has_it",
         "test_perturb.py", "test_render.py", "test_fused.py"]


def pytest_collection_modifyitems(config, items):
    grouped = config.pluginmanager.hasplugin("xdist")
    for item in items:
        name = f"{item.path.name}::{item.originalname}"
        for mark in TIERS.get(item.path.name, ()) + TIERS.get(name, ()):
            item.add_marker(getattr(pytest.mark, mark))
        if grouped:
            item.add_marker(pytest.mark.xdist_group(group_of(item)))
    if grouped:
        rank = {g: k for k, g in enumerate(FIRST)}
        items.sort(key=lambda item: rank.get(group_of(item), len(FIRST)))  # stable: files keep their order


@pytest.fixture
def write_scene(tmp_path):
    def make(name="s", **kw):
        p = tmp_path / f"{name}.toml"
        p.write_text(scene_text(**kw))
        return p

    return make
