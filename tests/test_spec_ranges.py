"""Every numeric field of every Spec has a range and refuses NaN and infinities; values that
would pass ``ocf build`` and then crash ``ocf train`` are refused at build, naming their key
path (issue 20)."""

import copy
import math
import typing

import pytest
import torch
import yaml
from pydantic import BaseModel, ValidationError

from ocf import plugins as ocf_plugins
from ocf import spec as spec_mod
from ocf.cli import main
from ocf.errors import SpecError, UserError
from ocf.fields import MAX_REPEATS, MAX_SIZE, SEED_LIMIT
from ocf.run.setup import check_device

SPEC_MODELS = [
    spec_mod.GenerateSpec,
    spec_mod.DataSpec,
    spec_mod.OptimizerSpec,
    spec_mod.ScheduleSpec,
    spec_mod.GecoSpec,
    spec_mod.CurriculumSpec,
    spec_mod.TrainSpec,
    spec_mod.EvalSpec,
]


def registered_models():
    """(label, model) for the spec's own sections and every registered Spec and Options."""
    out = [(m.__name__, m) for m in SPEC_MODELS]
    for e in ocf_plugins.default().registry.entries():
        model = getattr(e.obj, "Options" if e.kind == "dataset" else "Spec", None)
        if isinstance(model, type) and issubclass(model, BaseModel):
            out.append((f"{e.kind} {e.name}", model))
    return out


def numeric_fields():
    rows = []
    for label, model in registered_models():
        for name, field in model.model_fields.items():
            text = repr(field.annotation)
            kinds = [k for k in ("float", "int") if k in text.replace("typing", "")]
            if kinds:
                rows.append(pytest.param(model, name, field.annotation, kinds, id=f"{label}.{name}"))
    return rows


def shaped(annotation, value):
    """``value`` in the shape the annotation takes: a list for tuples and lists, a dict for
    dicts (of lists), else the bare value."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return shaped(args[0], value)
    if origin is typing.Annotated:
        return shaped(typing.get_args(annotation)[0], value)
    if origin in (tuple, list):
        args = typing.get_args(annotation)
        return [shaped(args[0], value)] * (len(args) if origin is tuple and ... not in args else 2)
    if origin is dict:
        return {"x": shaped(typing.get_args(annotation)[1], value)}
    return value


def field_errors(model, name, value):
    try:
        model.model_validate({name: value})
    except ValidationError as exc:
        return [e for e in exc.errors() if e["loc"] and e["loc"][0] == name]
    return []


@pytest.mark.parametrize("model,name,annotation,kinds", numeric_fields())
def test_every_numeric_field_has_a_range(model, name, annotation, kinds):
    if "float" in kinds:
        for bad in (math.nan, math.inf, -math.inf):
            assert field_errors(model, name, shaped(annotation, bad)), f"{model.__name__}.{name} accepts {bad}"
    else:
        assert field_errors(model, name, shaped(annotation, 2**70)), f"{model.__name__}.{name} accepts 2**70"
        assert field_errors(model, name, shaped(annotation, -(2**70))), f"{model.__name__}.{name} accepts -2**70"


def test_the_field_table_is_not_empty():
    assert len(numeric_fields()) > 150


# -- fixed cases through the resolver: the key path is named --------------------------------
def demo(root):
    return yaml.safe_load((root / "configs" / "slot_attention" / "demo.yaml").read_text())


def refused(data, *paths, match=None):
    with pytest.raises(SpecError) as err:
        spec_mod.resolve(data, ocf_plugins.default().registry)
    text = str(err.value)
    for path in paths:
        assert f"{path}:" in text, text
    if match:
        assert match in text, text
    return text


def with_value(data, path, value):
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    "path,value,match",
    [
        ("train.optimizer.eps", math.inf, "finite"),
        ("train.optimizer.lr", math.nan, "finite"),
        ("train.grad_clip", -math.inf, "finite"),
        ("train.seed", 2**70, f"less than {SEED_LIMIT}"),
        ("train.seed", -1, "greater than or equal to 0"),
        ("train.optimizer.betas", [2, 2], "less than 1"),
        ("train.optimizer.betas", [math.nan, 0.9], "finite"),
        ("train.threads", 1_000_000, "less than or equal to 1024"),
        ("train.steps", 10**12, "less than or equal to 1000000000"),
        ("data.generate.n", 10**9, "less than or equal to 1000000"),
        ("data.resolution", [10**7, 32], f"less than or equal to {MAX_SIZE}"),
        ("model.grouper.num_slots", 0, "greater than or equal to 1"),
        ("model.grouper.num_slots", 10**9, f"less than or equal to {MAX_SIZE}"),
        ("model.grouper.iterations", 10**9, f"less than or equal to {MAX_REPEATS}"),
        ("model.grouper.epsilon", math.inf, "finite"),
        ("model.objectives.0.weight", math.nan, "finite"),
        ("model.decoder.channels", [32, -1], "greater than or equal to 1"),
    ],
)
def test_out_of_range_values_name_their_path(root, path, value, match):
    shown = path if "betas" not in path and "resolution" not in path and "channels" not in path else path + "."
    text = refused(with_value(demo(root), path, value), match=match)
    assert shown in text, text


def test_geco_bounds_must_be_ordered(root):
    data = with_value(demo(root), "train.geco", {"term": "mse", "goal": 1.0, "beta_min": 10.0, "beta_max": 1.0})
    refused(data, "train.geco", match="beta_min 10.0 is above beta_max 1.0")


@pytest.mark.parametrize("name", ["../escape", "a/b", "a\\b", "..", "", "  "])
def test_a_spec_name_is_a_plain_name(root, name):
    refused(with_value(demo(root), "name", name), "name", match="plain name")


def test_unknown_generator_options_are_refused_with_the_known_ones(root):
    data = with_value(demo(root), "data.generate.options.radiuss", 3)
    text = refused(data, "data.generate.options.radiuss", match="unknown key; dataset shapes takes resolution")
    assert "max_objects" in text
    refused(with_value(demo(root), "data.generate.options.min_objects", 0), "data.generate.options.min_objects")
    hdf5 = with_value(with_value(demo(root), "data.dataset", "hdf5"), "data.generate.options", {"k": 1})
    refused(hdf5, "data.generate.options.k", match="hdf5 takes no options")


def test_unknown_metrics_and_their_options_are_refused_at_build(root):
    refused(with_value(demo(root), "eval.metrics", ["fg_ari", "fg_arii"]), "eval.metrics.1", match="did you mean")
    data = with_value(demo(root), "eval.metric_options", {"kid": {"subset_size": 10}})
    refused(data, "eval.metric_options.kid", match="'kid' is not in eval.metrics")
    data = with_value(demo(root), "eval.metric_options", {"ari": {"min_objectz": 1}})
    refused(data, "eval.metric_options.ari.min_objectz", match="metric ari takes")
    data = with_value(demo(root), "eval.metric_options", {"ari": {"min_objects": -1}})
    refused(data, "eval.metric_options.ari.min_objects")


def test_every_problem_is_reported_at_once(root):
    data = with_value(demo(root), "train.optimizer.eps", math.inf)
    data = with_value(data, "model.grouper.num_slots", 0)
    data = with_value(data, "data.generate.options.bogus", 1)
    refused(data, "train.optimizer.eps", "model.grouper.num_slots", "data.generate.options.bogus")


def test_a_device_this_machine_lacks_is_refused(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("mps", "cuda"):
        with pytest.raises(UserError, match=f"train.device: {device}, but no .* device is available"):
            check_device(spec_mod.TrainSpec(device=device))
    check_device(spec_mod.TrainSpec(device="cpu"))
    check_device(spec_mod.TrainSpec(device="auto"))


def test_ocf_build_refuses_with_exit_2(root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for i, (path, value) in enumerate([("train.device", "mps"), ("train.optimizer.eps", math.inf)]):
        spec = tmp_path / f"bad{i}.yaml"
        spec.write_text(yaml.safe_dump(with_value(demo(root), path, value)))
        assert main(["build", str(spec)]) == 2
        assert path in capsys.readouterr().err


def test_shipped_defaults_still_validate():
    for model in SPEC_MODELS:
        required = [n for n, f in model.model_fields.items() if f.is_required()]
        if not required:
            model()
