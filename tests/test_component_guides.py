"""The guides in docs/components/ stay true: every example runs.

Each page's code blocks tagged ``python example`` form one plugin module: it is executed in
a fresh module, registered in an isolated :class:`ocf.plugins.Plugins`, and every component
it registers passes :func:`ocf.testing.check_component`.  Blocks tagged ``python check``
run afterwards in the same namespace, and every ``test_*`` function they define is called.
The metric and dataset examples are also computed on a tiny state / written to a tiny file
here, and the index page's spec, made of the guides' components, builds and trains a step.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from ocf.plugins import Plugins
from ocf.testing import check_component

ROOT = Path(__file__).resolve().parents[1]
GUIDES = ROOT / "docs" / "components"
KINDS = ("encoder", "grouper", "prior", "decoder", "objective", "metric", "dataset")
COMPONENT_PAGES = ("encoder", "grouper", "prior", "decoder", "objective")
FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)
RECORDS = ("batch", "features", "latents", "prior", "rendering")


def blocks(page: str, tag: str) -> list[str]:
    """The bodies of the page's fenced blocks whose info string is ``python <tag>``."""
    text = (GUIDES / f"{page}.md").read_text()
    return [m["body"] for m in FENCE.finditer(text) if m["info"].split() == ["python", tag]]


def load_page(page: str) -> types.ModuleType:
    """The page's example as a module (in sys.modules, so pydantic and pickling find it)."""
    code = "".join(blocks(page, "example"))
    assert code, f"docs/components/{page}.md has no ```python example block"
    module = types.ModuleType(f"ocf_guide_{page}")
    module.__file__ = str(GUIDES / f"{page}.md")
    sys.modules[module.__name__] = module
    exec(compile(code, module.__file__, "exec"), module.__dict__)
    return module


def run_checks(page: str, module: types.ModuleType) -> int:
    """Run the page's ``python check`` blocks in the module's namespace; returns how many
    test functions they defined (each is called)."""
    before = set(module.__dict__)
    for code in blocks(page, "check"):
        exec(compile(code, f"{module.__file__}:check", "exec"), module.__dict__)
    tests = [v for k, v in module.__dict__.items() if k.startswith("test_") and k not in before and callable(v)]
    for test in tests:
        test()
    return len(tests)


@pytest.fixture
def guide_plugins():
    """An isolated Plugins with no entry points; pages are added by each test."""
    plugins = Plugins()
    yield plugins
    for name in list(plugins.info):
        plugins.unregister(name)
    for page in KINDS:
        sys.modules.pop(f"ocf_guide_{page}", None)


def add_page(plugins: Plugins, page: str) -> types.ModuleType:
    module = load_page(page)
    info = plugins.add_module(module, f"guide_{page}")
    assert info.status == "ok", f"{page}.md's plugin failed to load: {info.error}\n{info.traceback}"
    assert info.entries, f"{page}.md's plugin registers nothing"
    return module


def test_every_kind_has_a_page_linked_from_the_index_and_tutorial():
    index = (GUIDES / "index.md").read_text()
    tutorial = (ROOT / "docs" / "plugins" / "tutorial.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for kind in KINDS:
        assert (GUIDES / f"{kind}.md").exists(), f"docs/components/{kind}.md is missing"
        assert f"({kind}.md)" in index, f"index.md does not link {kind}.md"
        assert f"../components/{kind}.md" in tutorial, f"tutorial.md does not link {kind}.md"
    assert "docs/components/index.md" in readme


@pytest.mark.parametrize("page", COMPONENT_PAGES)
def test_component_page_example_conforms(page, guide_plugins):
    module = add_page(guide_plugins, page)
    entries = list(guide_plugins.registry.entries(plugin=f"guide_{page}"))
    assert {e.kind for e in entries} == {page}, f"{page}.md registers {[(e.kind, e.name) for e in entries]}"
    for entry in entries:
        assert entry.name.startswith("guide."), entry.name
        check_component(entry.obj, registry=guide_plugins.registry)
    assert run_checks(page, module) >= 1, f"{page}.md shows no check"


DIMS_CALL = re.compile(r"""(?:\.dim\(|dims\[|dims\.get\(|dims\.setdefault\()\s*["']([\w.]+)["']""")
DICT_KEY = re.compile(r"""["']([\w.]+)["']\s*:""")


def _dims_keys_in_source() -> set[str]:
    """Every literal ``ctx.dims`` key read or written in ocf/ and plugins/."""
    keys: set[str] = set()
    for folder in ("ocf", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            for line in path.read_text().splitlines():
                keys.update(DIMS_CALL.findall(line))
                if "dims.update(" in line:
                    keys.update(DICT_KEY.findall(line))
    return {k for k in keys if "." in k}


def test_index_lists_every_public_dims_key():
    keys = _dims_keys_in_source()
    public = {k for k in keys if k.split(".")[0] in RECORDS}
    assert {"features.tokens", "features.grid", "latents.objects", "latents.num_slots"} <= public, public
    index = (GUIDES / "index.md").read_text()
    table = index[index.index("## Sizes") :]
    missing = sorted(k for k in public if f"`{k}`" not in table)
    assert not missing, f"index.md's Sizes table lacks {missing}"
    assert "`batch.extras.<name>`" in table
    private = sorted(k for k in keys - public)
    assert private, "no plugin-private key found: the scan is broken"


def test_metric_page_example(guide_plugins):
    from ocf.errors import SpecError

    module = add_page(guide_plugins, "metric")
    [entry] = guide_plugins.registry.entries(plugin="guide_metric")
    assert (entry.kind, entry.name) == ("metric", "guide.count_error")
    cls = entry.obj
    with pytest.raises(SpecError, match="min_area"):
        cls(min_area=2.0)
    # three items: 2 slots over halves (true 2), 1 slot over all (true 2), 4 quarters (true 3)
    logits = torch.full((3, 1, 4, 4, 4), -9.0)
    logits[0, 0, 0, :, :2] = logits[0, 0, 1, :, 2:] = 9.0
    logits[1, 0, 2] = 9.0
    for k, (rows, cols) in enumerate(
        [(slice(0, 2), slice(0, 2)), (slice(0, 2), slice(2, 4)), (slice(2, 4), slice(0, 2)), (slice(2, 4), slice(2, 4))]
    ):
        logits[2, 0, k, rows, cols] = 9.0
    from ocf.records import Batch, Rendering, State

    counts = torch.tensor([[2], [2], [3]])
    state = State(Batch(torch.zeros(3, 1, 3, 4, 4), extras={"counts": counts}), rendering=Rendering(mask_logits=logits))
    metric = cls(background=False)
    metric.check(state)
    metric.update_state(state)
    assert metric.compute().item() == pytest.approx((0 + 1 + 1) / 3)  # found 2, 1, 4
    assert run_checks("metric", module) == 1


def test_dataset_page_example(guide_plugins, tmp_path):
    from ocf.data import make_dataset, read_info
    from ocf.errors import UserError

    module = add_page(guide_plugins, "dataset")
    [entry] = guide_plugins.registry.entries(plugin="guide_dataset")
    assert (entry.kind, entry.name) == ("dataset", "guide.squares")
    with pytest.raises(UserError, match="size"):
        entry.obj.parse_options({"resolution": 8, "size": 9})
    arrays = entry.obj().generate(6, 3, entry.obj.parse_options({"resolution": 12, "size": 3}))
    first = entry.obj().generate(2, 3, entry.obj.parse_options({"resolution": 12, "size": 3}))
    assert np.array_equal(arrays["frames"][:2], first["frames"])  # sample i depends on (seed, i)
    ids = [len(set(np.unique(m)) - {0}) for m in arrays["masks"]]
    assert arrays["counts"][:, 0].tolist() == ids
    path = make_dataset(guide_plugins.registry, "guide.squares", tmp_path / "s.h5", n=5, progress=False)
    assert read_info(path).n == 5
    assert run_checks("dataset", module) == 1


def yaml_blocks(page: str, tag: str) -> list[str]:
    text = (GUIDES / f"{page}.md").read_text()
    return [m["body"] for m in FENCE.finditer(text) if m["info"].split() == ["yaml", tag]]


def test_index_spec_of_the_examples_builds_trains_evaluates_and_samples(guide_plugins, tmp_path):
    """The seven examples are one working model: the index page's spec builds, a few steps
    on generated squares lower the loss, every listed metric scores, and the prior's samples
    render."""
    import yaml

    import ocf_common
    from ocf.assembly import Model, build
    from ocf.data import H5Dataset, collate, make_dataset
    from ocf.run.generate import generate
    from ocf.spec import resolve

    for page in KINDS:
        add_page(guide_plugins, page)
    assert guide_plugins.add_module(ocf_common, "common").status == "ok"
    [text] = yaml_blocks("index", "example")
    data = yaml.safe_load(text)
    data["data"]["path"] = str(tmp_path / "squares.h5")
    resolved = resolve(data, guide_plugins.registry)
    gen = data["data"]["generate"]
    path = make_dataset(
        guide_plugins.registry,
        data["data"]["dataset"],
        data["data"]["path"],
        n=20,
        options=gen["options"],
        progress=False,
    )
    batch = collate([item for item in H5Dataset(path, split="train")])  # 16 squares images

    torch.manual_seed(0)
    model = build(resolved)
    assert [label for label, _ in model.order()] == [
        "encoder",
        "grouper",
        "prior",
        "decoder",
        "objectives.0",
        "objectives.1",
    ]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        state = model(batch)
        loss = Model.total(state.losses)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(state.losses) == {"l1", "kl"}
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses

    model.eval()
    with torch.no_grad():
        state = model(batch, losses=False)
    assert state.segmentation().shape == (16, 1, 4, 16, 16)  # the decoder's masks
    options = resolved.spec.eval.metric_options
    for name in resolved.spec.eval.metrics:
        metric = guide_plugins.registry.get("metric", name).from_spec(resolved, **options.get(name, {}))
        metric.check(state)
        metric.update_state(state)
        assert np.isfinite(float(metric.compute())), name
    samples = generate(model, 3, generator=torch.Generator().manual_seed(0))
    assert samples.rendering.recon.shape == (3, 1, 3, 16, 16)
