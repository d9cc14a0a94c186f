"""Procedural generators: determinism, shapes, ground truth consistent with the pixels."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

try:
    import ocf_common.datasets  # noqa: F401
except ImportError:  # running from a checkout without the plugins installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from ocf.data.generator import count_ids  # noqa: E402
from ocf.errors import UserError  # noqa: E402
from ocf_common.datasets import GENERATORS, check_rule, tetromino_placements  # noqa: E402

N = 12

CASES = {
    "shapes": {},
    "shapes-random-bg": {"background": "random", "resolution": 24},
    "tetrominoes": {},
    "nshapes": {},
    "nshapes-color-depth": {"color": True, "depth": True},
    "moving_sprites": {"frames": 5},
    "moving_sprites-camera": {"frames": 5, "camera_shift": 1.5},
    "moving_digits": {"frames": 6},
    "correlated": {},
    "correlated-stacked": {"rule": "stacked"},
}


def make(case: str, n: int = N, seed: int = 0, **extra):
    name = case.split("-")[0]
    cls = GENERATORS[name]
    options = cls.parse_options({**CASES.get(case, {}), **extra})
    return cls, options, cls().generate(n, seed, options)


@pytest.fixture(scope="module")
def generated():
    return {case: make(case) for case in CASES}


def test_registry_names():
    assert set(GENERATORS) == {"shapes", "tetrominoes", "nshapes", "moving_sprites", "moving_digits", "correlated"}
    for name, cls in GENERATORS.items():
        assert cls.name == name and cls.description
        for field, info in cls.Options.model_fields.items():
            assert info.description, f"{name}.{field} has no description"


@pytest.mark.parametrize("case", list(CASES))
def test_shapes_and_dtypes(generated, case):
    cls, options, out = generated[case]
    frames, masks = out["frames"], out["masks"]
    assert frames.dtype == np.uint8 and frames.ndim == 5
    n, t, h, w, c = frames.shape
    assert n == N and h == w == options.resolution
    assert t == (options.frames if cls.video else 1)
    assert c == len(cls().channels(options))
    assert masks.shape == (n, t, h, w) and masks.dtype in (np.int16, np.int32)
    assert masks.min() >= -1
    for key, value in out.items():
        assert value.shape[0] == N, key
        axes = cls.axes.get(key)
        if axes and axes.split()[:2] == ["n", "t"]:
            assert value.shape[1] == t, key


@pytest.mark.parametrize("case", list(CASES))
def test_deterministic(generated, case):
    _, _, first = generated[case]
    _, _, again = make(case)
    assert first.keys() == again.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)
    _, _, other = make(case, seed=1)
    assert not np.array_equal(first["frames"], other["frames"])
    _, _, prefix = make(case, n=5)  # sample i depends only on (seed, i)
    np.testing.assert_array_equal(prefix["frames"], first["frames"][:5])


@pytest.mark.parametrize("case", [c for c in CASES if c != "shapes-random-bg"])
def test_background_black_and_objects_visible(generated, case):
    _, _, out = generated[case]
    frames, masks = out["frames"], out["masks"]
    colour = frames[..., :3] if frames.shape[-1] >= 3 else frames[..., :1]
    assert (colour[masks == 0] == 0).all(), "background pixels must be black"
    assert (colour[masks != 0].max(-1) > 0).all(), "object pixels must not be black"


def test_random_background_matches_extra(generated):
    _, _, out = generated["shapes-random-bg"]
    bg = np.round(out["background_color"] * 255).astype(np.uint8)  # [N 3]
    for i in range(N):
        sel = out["masks"][i, 0] == 0
        assert (out["frames"][i, 0][sel] == bg[i]).all()


@pytest.mark.parametrize(
    "case",
    [
        "shapes",
        "shapes-random-bg",
        "tetrominoes",
        "moving_sprites",
        "moving_sprites-camera",
        "correlated",
        "correlated-stacked",
    ],
)
def test_counts_match_masks(generated, case):
    _, _, out = generated[case]
    masks, counts = out["masks"], out["counts"]
    np.testing.assert_array_equal(counts, count_ids(masks, int(masks.max())))
    visibility = out["visibility"]
    for o in range(visibility.shape[1]):
        np.testing.assert_array_equal(visibility[:, o], (masks == o + 1).any(axis=(1, 2, 3)))


def test_shapes_object_range_and_colours(generated):
    _, options, out = generated["shapes"]
    placed = out["present"].sum(1)
    assert placed.min() >= options.min_objects and placed.max() <= options.max_objects
    frames, masks = out["frames"][:, 0], out["masks"][:, 0]
    colours = np.round(out["color"] * 255).astype(np.uint8)
    for i in range(N):
        for o in range(options.max_objects):
            sel = masks[i] == o + 1
            if sel.any():
                assert (frames[i][sel] == colours[i, o]).all()
    _, _, few = make("shapes", min_objects=2, max_objects=2)
    assert (few["present"].sum(1) == 2).all()


def test_tetrominoes(generated):
    assert len(tetromino_placements()) == 19
    _, options, out = generated["tetrominoes"]
    assert set(np.unique(out["masks"])) <= {0, 1, 2, 3}
    sizes = np.stack([(out["masks"] == k).sum(axis=(1, 2, 3)) for k in (1, 2, 3)], 1)
    assert sizes.max() <= 4 * options.block**2 and (out["shape"] >= 0).all() and (out["shape"] < 19).all()
    palette = {(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255), (0, 255, 255), (0, 0, 0)}
    assert {tuple(p) for p in out["frames"].reshape(-1, 3)} <= palette


def test_nshapes_labels_and_channels(generated):
    _, options, out = generated["nshapes"]
    values = set(np.unique(out["masks"]))
    assert values <= {-1, 0, 1, 2, 3, 4} and {1, 2, 3, 4} <= values
    assert set(np.unique(out["frames"])) <= {0, 255}  # white on black
    assert (out["counts"] == 4).all()
    _, _, cd = generated["nshapes-color-depth"]
    assert cd["frames"].shape[-1] == 4
    depth = cd["frames"][..., 3]
    assert (depth[cd["masks"] == 0] == 0).all() and (depth[cd["masks"] != 0] > 0).all()
    for extra, c in (({"depth": True}, 2), ({"color": True}, 3), ({"num_shapes": 10}, 1), ({"num_shapes": 2}, 1)):
        _, opts, o = make("nshapes", n=4, **extra)
        assert o["frames"].shape[-1] == c
        assert o["masks"].max() <= opts.num_shapes


def test_nshapes_overlap_is_ignore():
    _, _, out = make("nshapes", n=64)
    assert (out["masks"] == -1).any(), "4Shapes with 11 px shapes on 32 px overlaps sometimes"
    assert (out["frames"][out["masks"] == -1] == 255).all()


@pytest.mark.parametrize("case", ["moving_sprites", "moving_sprites-camera"])
def test_moving_sprites_identities_stable(generated, case):
    _, options, out = generated[case]
    frames, masks = out["frames"], out["masks"]
    colours = np.round(out["color"] * 255).astype(np.uint8)
    for i in range(N):
        for o in range(options.max_objects):
            sel = masks[i] == o + 1  # [T H W]
            if sel.any():
                assert out["present"][i, o]
                assert (frames[i][sel] == colours[i, o]).all(), "an id must keep its object over time"
    boxes = out["boxes"]  # mask pixels lie inside their boxes
    n, t = masks.shape[:2]
    ys, xs = np.mgrid[0 : options.resolution, 0 : options.resolution]
    for i in range(n):
        for j in range(t):
            for o in range(options.max_objects):
                sel = masks[i, j] == o + 1
                x, y, w, h = boxes[i, j, o]
                if sel.any():
                    assert (
                        xs[sel].min() == x
                        and ys[sel].min() == y
                        and xs[sel].max() == x + w - 1
                        and ys[sel].max() == y + h - 1
                    )
                else:
                    assert (boxes[i, j, o] == 0).all()


def test_moving_sprites_move_and_camera(generated):
    _, _, still = generated["moving_sprites"]
    assert (still["camera"] == 0).all()
    assert not np.array_equal(still["frames"][:, 0], still["frames"][:, -1])
    _, options, cam = generated["moving_sprites-camera"]
    steps = np.diff(cam["camera"], axis=1)  # constant pan, bounded per axis
    assert np.allclose(steps, steps[:, :1]) and np.abs(steps).max() <= options.camera_shift


def test_moving_sprites_saturation_keeps_channels_off_black(generated):
    _, _, default = generated["moving_sprites"]
    _, _, pastel = make("moving_sprites", frames=5, saturation=[0.25, 0.5])
    fg, fg_p = default["masks"] > 0, pastel["masks"] > 0
    np.testing.assert_array_equal(fg, fg_p)  # same scenes: only the colours change
    darkest = pastel["frames"][fg_p].min(-1) / 255.0  # value >= 0.75, saturation <= 0.5
    assert darkest.min() >= 0.75 * 0.5 - 1 / 255
    assert default["frames"][fg].min(-1).min() / 255.0 < 0.1  # the default lets a channel reach black
    c = pastel["color"][pastel["present"]]
    sat = (c.max(-1) - c.min(-1)) / c.max(-1)  # HSV saturation of the drawn colours
    assert sat.min() >= 0.25 - 1e-6 and sat.max() <= 0.5 + 1e-6


def test_moving_digits(generated):
    _, options, out = generated["moving_digits"]
    assert out["frames"].shape[-1] == 1
    masks = out["masks"]
    _, _, many = make("moving_digits", n=64, frames=3)
    k = many["visibility"].sum(1)
    assert set(np.unique(k)) <= {0, 1, 2} and len(set(np.unique(k))) == 3
    for data in (out, many):
        b, p = data["boxes"], data["visibility"]
        two = p.all(1)
        x0, y0, x1, y1 = b[two, 0, 0, 0], b[two, 0, 0, 1], b[two, 0, 1, 0], b[two, 0, 1, 1]
        ds = options.digit_size
        assert ((np.abs(x0 - x1) >= ds) | (np.abs(y0 - y1) >= ds)).all(), "digits overlap in the first frame"
        assert (b.transpose(0, 2, 1, 3)[~p] == 0).all() and (data["labels"][~p] == -1).all()
        np.testing.assert_array_equal(data["counts"], np.repeat(p.sum(1, keepdims=True), b.shape[1], 1))
        np.testing.assert_array_equal(data["counts"][:, 0], count_ids(data["masks"][:, 0], 2))
        assert (b[..., :2] >= 0).all() and (b[..., 0] + b[..., 2] <= options.resolution).all()
    assert (masks > 0).sum() and (out["frames"][masks > 0] > 0).all()


def test_check_rule_separates_rules():
    _, _, same = make("correlated", n=40)
    _, _, stacked = make("correlated", n=40, rule="stacked")
    _, _, indep = make("shapes", n=40, min_objects=3, max_objects=4)
    s_same = check_rule("same_color", same["frames"])
    s_indep = check_rule("same_color", indep["frames"][:, 0])  # [N H W C] works too
    assert s_same.shape == (40,) and ((0 <= s_indep) & (s_indep <= 1)).all()
    assert s_same.mean() > 0.95 and s_indep.mean() < 0.85
    assert (s_same.mean() - s_indep.mean()) > 0.2
    t_stacked = check_rule("stacked", stacked["frames"])
    t_indep = check_rule("stacked", indep["frames"])
    assert t_stacked.mean() > 0.95 and t_indep.mean() < 0.5
    assert (check_rule("same_color", np.zeros((2, 8, 8, 3), np.uint8)) == 0).all()
    with pytest.raises(ValueError):
        check_rule("symmetry", same["frames"])


@pytest.mark.parametrize(
    "name,options,word",
    [
        ("shapes", {"resolution": 4}, "resolution"),
        ("shapes", {"colour": "red"}, "colour"),
        ("shapes", {"min_objects": 3, "max_objects": 2}, "min_objects"),
        ("shapes", {"background": "plaid"}, "background"),
        ("nshapes", {"num_shapes": 11}, "num_shapes"),
        ("moving_digits", {"max_digits": 6, "digit_size": 30}, "max_digits"),
        ("moving_sprites", {"saturation": [0.8, 0.2]}, "saturation"),
        ("tetrominoes", {"resolution": 40}, "resolution"),
    ],
)
def test_bad_options_name_the_option(name, options, word):
    with pytest.raises(UserError) as err:
        GENERATORS[name].parse_options(options)
    assert word in str(err.value)


def test_generation_is_fast():
    cls = GENERATORS["shapes"]
    start = time.perf_counter()
    out = cls().generate(2000, 0, cls.parse_options({}))
    assert out["frames"].shape == (2000, 1, 32, 32, 3)
    assert time.perf_counter() - start < 15.0  # ~1.5 s measured on one shared core


def test_sprite_options_are_shared_and_keep_each_generators_defaults_and_bounds():
    from ocf_common.datasets import MovingSprites, Shapes, SpriteOptions

    assert issubclass(Shapes.Options, SpriteOptions) and issubclass(MovingSprites.Options, SpriteOptions)
    still, video = Shapes.parse_options({}), MovingSprites.parse_options({})
    assert (still.max_objects, still.max_size) == (4, 0.22) and (video.max_objects, video.max_size) == (3, 0.2)
    assert Shapes.parse_options({"max_size": 0.35}).max_size == 0.35
    with pytest.raises(UserError, match="max_size"):  # sprites in video stay at most 0.3 of the resolution
        MovingSprites.parse_options({"max_size": 0.35})
    for cls in (Shapes, MovingSprites):
        with pytest.raises(UserError, match=r"min_size \(0.2\) must be <= max_size \(0.15\)"):
            cls.parse_options({"min_size": 0.2, "max_size": 0.15})
    with pytest.raises(UserError, match=r"min_speed \(3.0\) must be <= max_speed \(1.0\)"):
        MovingSprites.parse_options({"min_speed": 3, "max_speed": 1})
    with pytest.raises(UserError, match="min_speed"):  # options of one generator are not another's
        Shapes.parse_options({"min_speed": 1})


def test_sprite_masks_cover_the_pixel_centres_inside_the_shape():
    from ocf_common.datasets import sprite_masks

    # a square of half-size 3 centred at (8, 8): pixel centres x + 0.5 in [5, 11], so columns and rows 5..10
    square, circle = sprite_masks(("square", "circle"), [0, 1], [8, 8], [8, 8], [3, 3], [0, 0], 16, 16)
    expected = np.zeros((16, 16), bool)
    expected[5:11, 5:11] = True
    np.testing.assert_array_equal(square, expected)
    ys, xs = np.mgrid[0:16, 0:16] + 0.5
    np.testing.assert_array_equal(circle, (xs - 8) ** 2 + (ys - 8) ** 2 <= 9)


def test_hsv_to_rgb_agrees_with_colorsys():
    import colorsys

    from ocf_common.datasets import hsv_to_rgb

    hsv = np.random.default_rng(0).uniform(0, 1, (200, 3))
    expected = np.array([colorsys.hsv_to_rgb(*row) for row in hsv])
    np.testing.assert_allclose(hsv_to_rgb(hsv), expected, atol=1e-12)


def test_moving_digits_without_scikit_learn_names_the_extra(monkeypatch):
    from ocf_common.datasets import MovingDigits, digit_glyphs

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if not installed
    digit_glyphs.cache_clear()
    try:
        with pytest.raises(UserError, match=r"scikit-learn.*pip install 'ocf\[digits\]'"):
            MovingDigits().generate(2, 0, MovingDigits.parse_options({"frames": 2}))
    finally:
        digit_glyphs.cache_clear()


def test_count_ids_counts_distinct_ids_per_map():
    from ocf.data.generator import id_presence

    masks = np.array([[[0, 1], [1, -1]], [[2, 0], [5, 5]], [[0, 0], [0, 0]]])  # [3 2 2]
    np.testing.assert_array_equal(count_ids(masks, 5), [1, 2, 0])
    np.testing.assert_array_equal(count_ids(masks[None], 5), [[1, 2, 0]])  # any leading axes
    np.testing.assert_array_equal(id_presence(masks, 2), [[True, False], [False, True], [False, False]])
