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
        "encoder": "features", "grouper": "latents", "prior": "prior", "decoder": "rendering", "objective": None,
    }
    assert stage("decoder").record_type is Rendering and stage("objective").key == "objectives"
    with pytest.raises(KeyError, match="unknown component kind 'dataset'"):
        stage("dataset")


def test_old_names_are_derived_from_the_table():
    from ocf import spec
    from ocf.assembly import RECORD_OWNER
    from ocf.registry import COMPONENT_KINDS, KINDS as ALL_KINDS
    from ocf.testing import RECORD_TYPES

    assert COMPONENT_KINDS == KINDS and ALL_KINDS == KINDS + ("dataset", "metric")
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
