"""The kernel's vocabulary: the stage table, the run order, objectives in spec order."""

import pytest
import torch
from toy_plugin import spec_dict

from ocf import assembly
from ocf.components import BASES, KINDS, STAGES, Decoder, Encoder, Grouper, Objective, Prior, run_position, stage
from ocf.records import Features, Latents, PriorTerms, Rendering
from ocf.spec import resolve


def test_stage_table_is_the_one_vocabulary():
    assert KINDS == ("encoder", "grouper", "prior", "decoder", "objective")
    assert [s.order for s in STAGES] == sorted(s.order for s in STAGES)
    assert BASES == {"encoder": Encoder, "grouper": Grouper, "prior": Prior, "decoder": Decoder, "objective": Objective}
    assert {s.kind: s.record for s in STAGES} == {
        "encoder": "features",
        "grouper": "latents",
        "prior": "prior",
        "decoder": "rendering",
        "objective": None,
    }
    assert stage("decoder").record_type is Rendering and stage("objective").key == "objectives"
    with pytest.raises(KeyError, match="unknown component kind 'dataset'"):
        stage("dataset")


def test_old_names_are_derived_from_the_table():
    from ocf import spec
    from ocf.assembly import RECORD_OWNER
    from ocf.registry import COMPONENT_KINDS
    from ocf.registry import KINDS as ALL_KINDS
    from ocf.testing import RECORD_TYPES

    assert COMPONENT_KINDS == KINDS and ALL_KINDS == KINDS + ("dataset", "metric", "converter", "result")
    assert spec.STAGES == ("encoder", "grouper", "prior", "decoder")
    assert RECORD_OWNER == {"features": "encoder", "latents": "grouper", "prior": "prior", "rendering": "decoder"}
    assert RECORD_TYPES == {"encoder": Features, "grouper": Latents, "prior": PriorTerms, "decoder": Rendering}


def test_eval_only_grouper_runs_after_the_decoder():
    class Clusters(Grouper):
        eval_only = True

    parts = [("objectives.0", Objective), ("decoder", Decoder), ("grouper", Clusters), ("encoder", Encoder)]
    assert [label for label, _ in assembly.run_order(parts)] == ["encoder", "decoder", "grouper", "objectives.0"]
    assert run_position(Grouper) < run_position(Decoder) < run_position(Clusters) < run_position(Objective)


def test_eleven_objectives_keep_spec_order(toy_plugins):
    d = spec_dict()
    d["model"]["objectives"] = [{"type": "toy.mse", "weight": float(i + 1)} for i in range(11)]
    resolved = resolve(d, toy_plugins.registry)
    assert [c.index for c in resolved.components if c.kind == "objective"] == list(range(11))
    model = assembly.build(resolved)
    # lexical order of "objectives.N" would put objectives.10 third
    assert [o.spec.weight for o in model.objectives] == [float(i + 1) for i in range(11)]
    labels = [label for label, _ in model.order()]
    assert labels == ["encoder", "grouper", "decoder"] + [f"objectives.{i}" for i in range(11)]
    assert model.stages()["objectives.2"].spec.weight == 3.0
    assert [o["weight"] for o in resolved.expanded()["model"]["objectives"]] == [float(i + 1) for i in range(11)]


def test_forward_writes_each_record_in_run_order(toy_plugins):
    model = assembly.build(resolve(spec_dict(num_slots=3), toy_plugins.registry))
    state = model(assembly.dummy_batch(model.resolved))
    assert state.features.tokens.shape[-1] == 8 and state.latents.objects.shape == (2, 3, 8)
    assert state.rendering.recon.shape == (2, 1, 3, 8, 8) and state.prior is None
    assert set(state.losses) == {"mse"} and torch.isfinite(state.losses["mse"])


def test_record_paths_are_checked_against_the_records():
    from ocf.records import RECORD_FIELDS, path_problem

    assert RECORD_FIELDS["latents"][:2] == ("objects", "frames")
    for ok in ("batch.frames", "batch.extras.counts", "rendering.extras.rotating", "prior.terms", "latents.where"):
        assert path_problem(ok) is None, ok
    assert "latents has no field 'objets'" in path_problem("latents.objets")
    assert "does not start with a record" in path_problem("slots.objects")
    assert "does not start with a record" in path_problem("features")
    assert "not a dict" in path_problem("features.tokens.x")


def test_a_typo_in_provides_fails_at_plugin_load_naming_the_class(toy_plugins):
    import types

    from ocf.hookspecs import hookimpl

    class Typo(Encoder):
        provides = ("features.tokenz",)

    mod = types.ModuleType("typo")
    mod.ocf_register_components = hookimpl(lambda registry: registry.add("encoder", "typo.encoder", Typo))
    info = toy_plugins.add_module(mod, "typo")
    assert info.status == "failed"
    assert "Typo" in info.error and "provides 'features.tokenz': features has no field 'tokenz'" in info.error
    assert "Valid fields: batch.frames" in info.error and "features.tokens" in info.error
    assert ("encoder", "typo.encoder") not in toy_plugins.registry


# -- names, registration, the build context ----------------------------------------------
def test_register_infers_the_kind_and_uses_the_declared_name():
    from toy_plugin import ToyEncoder, ToyMSE

    from ocf.data import Generator
    from ocf.metrics import EvalMetric
    from ocf.registry import Registry

    class Gen(Generator):
        name = "toy.gen"

    class Metric(EvalMetric):
        name = "toy.metric"

        def update_state(self, state):  # pragma: no cover - never run
            pass

    reg = Registry()
    reg.register(ToyEncoder, ToyMSE, Gen, Metric, plugin="toy")
    assert reg.get("encoder", "toy.encoder") is ToyEncoder and reg.get("objective", "toy.mse") is ToyMSE
    assert reg.get("dataset", "toy.gen") is Gen and reg.get("metric", "toy.metric") is Metric
    assert reg.entry("encoder", "toy.encoder").plugin == "toy"
    reg.register(ToyMSE, name="toy.alias")  # one class under a second name
    assert reg.get("objective", "toy.alias") is ToyMSE and ToyMSE.name == "toy.mse"


def test_register_refuses_unnamed_inheriting_or_unknown_classes():
    from toy_plugin import ToyEncoder

    from ocf.errors import RegistryError
    from ocf.registry import Registry

    class Nameless(Encoder):
        pass

    class Child(ToyEncoder):
        pass

    reg = Registry()
    with pytest.raises(RegistryError, match=r"encoder .*Nameless declares no name: set name = '<plugin>.<thing>'"):
        reg.register(Nameless)
    with pytest.raises(RegistryError, match=r"Child declares no name \(it inherits 'toy.encoder'"):
        reg.register(Child)
    with pytest.raises(RegistryError, match="cannot tell what <class 'dict'> is"):
        reg.register(dict)
    with pytest.raises(RegistryError, match="names one class"):
        reg.register(ToyEncoder, Child, name="x")


def test_instances_know_the_name_they_were_built_under(toy_plugins):
    d = spec_dict()
    toy_plugins.registry.register(__import__("toy_plugin").ToyMSE, name="toy.other_mse", plugin="toy")
    d["model"]["objectives"] = [{"type": "toy.other_mse"}]
    model = assembly.build(resolve(d, toy_plugins.registry))
    assert model.objectives[0].name == "toy.other_mse" and model.objectives[0].label == "objective toy.other_mse"
    assert model.grouper.label == "grouper toy.grouper" and type(model.grouper).name == "toy.grouper"
    with pytest.warns(DeprecationWarning, match="registered_name is deprecated.*use name"):
        assert model.objectives[0].registered_name == "toy.other_mse"
    with pytest.warns(DeprecationWarning):
        assert type(model.grouper).registered_name == "toy.grouper"
    rows = {
        r.stage: r for r in assembly.report(model, model(assembly.dummy_batch(model.resolved)), toy_plugins.registry)
    }
    assert rows["objectives.0"].name == "toy.other_mse" and rows["objectives.0"].plugin == "toy"


def test_ctx_dim_names_the_component_being_built():
    from toy_plugin import ToyGrouper

    from ocf.components import BuildContext
    from ocf.errors import SpecError

    ctx = BuildContext(channels=3, frames=1, resolution=(8, 8))
    with pytest.raises(SpecError, match=r"grouper toy.grouper needs the size of features.tokens, which no earlier"):
        ctx.construct(ToyGrouper, ToyGrouper.Spec(), kind="grouper", name="toy.grouper", where="model.grouper")
    assert ctx.label == "this component"  # restored after the build
    with pytest.raises(SpecError, match="^my thing needs the size of x"):
        ctx.dim("x", "my thing")  # the two-argument form still works
    ctx.dims["features.tokens"] = 4
    with pytest.raises(SpecError, match=r"^model.grouper: grouper toy.grouper cannot be built: "):
        ctx.construct(
            ToyGrouper,
            ToyGrouper.Spec.model_construct(num_slots="x"),
            kind="grouper",
            name="toy.grouper",
            where="model.grouper",
        )


class Nested(Objective):
    """Builds a nested decoder from its parameters (like sri.ordered_nll)."""

    name = "toy.nested"
    needs = ("latents.objects",)

    class Spec(Objective.Spec):
        decoder: dict = {"type": "toy.decoder"}

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.inner = ctx.build("decoder", spec.decoder, "decoder")

    def forward(self, state):
        return {"zero": self.inner(state).recon.mean() * 0}


def test_ctx_build_resolves_through_the_models_own_registry(toy_plugins):
    from ocf.errors import SpecError

    toy_plugins.registry.register(Nested, plugin="toy")
    d = spec_dict()
    d["model"]["objectives"].append({"type": "toy.nested"})
    model = assembly.build(resolve(d, toy_plugins.registry))
    inner = model.objectives[1].inner
    assert inner.label == "decoder toy.decoder" and type(inner).__name__ == "ToyDecoder"
    assert any(k.startswith("objectives.1.inner.out.") for k in model.state_dict())
    d["model"]["objectives"][1]["decoder"] = {"type": "toy.decodr"}
    with pytest.raises(SpecError, match=r"model.objectives.1.decoder.type: unknown decoder 'toy.decodr'; did you mean"):
        assembly.build(resolve(d, toy_plugins.registry))
    d["model"]["objectives"][1]["decoder"] = {"type": "toy.decoder", "width": 3}
    with pytest.raises(SpecError, match=r"model.objectives.1.decoder.width: unknown key"):
        assembly.build(resolve(d, toy_plugins.registry))


def test_front_door_exports_the_plugin_api_lazily():
    import subprocess
    import sys

    import ocf
    from ocf import components, data, errors, hookspecs, metrics, prob, records, testing

    expected = {
        "hookimpl": hookspecs.hookimpl,
        "Encoder": components.Encoder,
        "Grouper": components.Grouper,
        "Prior": components.Prior,
        "Decoder": components.Decoder,
        "Objective": components.Objective,
        "Component": components.Component,
        "ComponentSpec": components.ComponentSpec,
        "ObjectiveSpec": components.ObjectiveSpec,
        "BuildContext": components.BuildContext,
        "State": records.State,
        "Batch": records.Batch,
        "Features": records.Features,
        "Latents": records.Latents,
        "PriorTerms": records.PriorTerms,
        "Rendering": records.Rendering,
        "UserError": errors.UserError,
        "SpecError": errors.SpecError,
        "check_component": testing.check_component,
        "EvalMetric": metrics.EvalMetric,
        "ItemMean": metrics.ItemMean,
        "MetricSpec": metrics.MetricSpec,
        "DiagonalGaussian": prob.DiagonalGaussian,
        "Generator": data.Generator,
    }
    for name, obj in expected.items():
        assert getattr(ocf, name) is obj, name
        assert name in ocf.__all__ and name in dir(ocf)
    with pytest.raises(AttributeError, match="no attribute 'Grouperr'"):
        _ = ocf.Grouperr
    # importing ocf alone loads neither torch nor the kernel
    code = "import sys, ocf; print('torch' in sys.modules, 'ocf.components' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# -- hygiene: the device anchor, Rendering.compose, abstract forwards --------------------
def test_prior_knows_the_models_device_and_dtype():
    from ocf.components import BuildContext

    class Flat(Prior):
        name = "toy.flat"

    prior = Flat(Flat.Spec(), BuildContext(channels=3, frames=1, resolution=(4, 4)))
    assert prior.factory_kwargs == {"device": torch.device("cpu"), "dtype": torch.float32}
    assert prior.double().factory_kwargs["dtype"] is torch.float64
    assert "_anchor" not in prior.state_dict()  # not saved: old checkpoints load unchanged


def test_rendering_compose_mixes_slots_by_their_masks():
    rgb = torch.tensor([1.0, 3.0]).view(1, 1, 2, 1, 1, 1).expand(1, 1, 2, 1, 2, 2)  # slot 0 is 1, slot 1 is 3
    logits = torch.zeros(1, 1, 2, 2, 2)
    logits[..., 0, 0] = torch.tensor([0.0, 1e4])  # pixel (0, 0) belongs to slot 1; the rest is shared equally
    r = Rendering.compose(rgb, logits, extras={"note": 1})
    assert r.recon.shape == (1, 1, 1, 2, 2) and r.rgb is rgb and r.mask_logits is logits and r.extras == {"note": 1}
    assert r.recon[0, 0, 0].tolist() == [[3.0, 2.0], [2.0, 2.0]]


def test_a_component_without_forward_says_so():
    from ocf.components import BuildContext

    class Lazy(Grouper):
        name = "toy.lazy"

    class LazyObjective(Objective):
        pass

    ctx = BuildContext(channels=3, frames=1, resolution=(4, 4))
    with pytest.raises(NotImplementedError, match=r"grouper toy.lazy does not implement forward\(state\) -> Latents"):
        Lazy(Lazy.Spec(), ctx)(None)
    with pytest.raises(NotImplementedError, match="objective LazyObjective does not .* a dict of scalar loss terms"):
        LazyObjective(LazyObjective.Spec(), ctx)(None)


def test_prior_sampling_goes_through_draw_and_refuses_condition_unless_conditional():
    from ocf.components import BuildContext, Prior, SampleRequest
    from ocf.errors import UserError
    from ocf.records import Latents, PriorTerms

    class Drawn(Prior):
        name = "t.drawn"

        def forward(self, state):
            return PriorTerms(terms={})

        def draw(self, request: SampleRequest) -> Latents:
            return Latents(objects=torch.full((request.n, 2, 3), request.temperature))

    class OldStyle(Prior):  # overrides sample itself, as plugins written before draw() do
        name = "t.old"

        def sample(self, n, *, temperature=1.0, generator=None, condition=None, frames=None):
            return Latents(objects=torch.zeros(n, 1, 1))

    class NotGenerative(Prior):
        name = "t.none"

    ctx = BuildContext(channels=3, frames=1, resolution=(8, 8))
    drawn = Drawn(Drawn.Spec(), ctx)
    assert drawn.sample(4, temperature=0.5).objects.shape == (4, 2, 3)
    assert drawn.sample(1, temperature=0.5).objects.unique().item() == 0.5
    with pytest.raises(UserError, match="cannot continue observed frames"):
        drawn.sample(1, condition=object())
    Drawn.conditional = True
    assert drawn.sample(1, condition=object()).objects.shape == (1, 2, 3)
    assert Drawn.can_sample() and OldStyle.can_sample() and not NotGenerative.can_sample()
    with pytest.raises(NotImplementedError, match="cannot sample"):
        NotGenerative(NotGenerative.Spec(), ctx).sample(1)
