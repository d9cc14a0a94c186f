"""Several GECO constraints by name (train.geco: {name: GecoSpec}): each error against its own
penalised terms with its own β, the spec checks, checkpoint state and logging; the single form
keeps its old meaning."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from ocf.geco import Geco, GecoSet, make_geco
from ocf.spec import GecoSpec, TrainSpec

TERMS = {"nll": 2.0, "seg_kl": 3.0, "ordered_nll": 5.0, "sri_kl": 7.0, "aux": 11.0}


def terms() -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v) for k, v in TERMS.items()}


def two(**second) -> dict:
    return {
        "seg": {"term": "nll", "penalises": ["seg_kl"], "goal": 1.0, "step_size": 0.1, "speedup": None},
        "sri": {"term": "ordered_nll", "penalises": ["sri_kl"], "goal": 6.0, "step_size": 0.2, "speedup": 10.0}
        | second,
    }


def test_each_constraint_weights_its_own_terms_with_its_own_beta():
    geco = make_geco(TrainSpec(geco=two(beta_init=0.5)).geco)
    assert isinstance(geco, GecoSet)
    # seg: 2 + 1·3; sri: 5 + 0.5·7; aux (named by neither) with weight 1
    assert float(geco.loss(terms())) == pytest.approx(2 + 3 + 5 + 0.5 * 7 + 11)
    seg, sri = geco.constraints
    assert seg.beta == pytest.approx(math.exp(0.1 * (1.0 - 2.0)))  # error above goal: β shrinks
    assert sri.beta == pytest.approx(0.5 * math.exp(10.0 * 0.2 * (6.0 - 5.0)))  # below goal: grows, with speedup
    assert geco.log_values() == {"geco/beta/seg": seg.beta, "geco/beta/sri": sri.beta}
    assert geco.summary() == {"seg": seg.beta, "sri": sri.beta} and geco.beta == seg.beta


def test_a_catch_all_constraint_takes_the_unnamed_terms():
    specs = two()
    specs["sri"].pop("penalises")
    geco = make_geco(TrainSpec(geco=specs).geco)
    assert float(geco.loss(terms(), update=False)) == pytest.approx(2 + 3 + 5 + (7 + 11))


def test_the_single_form_is_unchanged():
    geco = make_geco(TrainSpec(geco={"term": "nll", "goal": 1.0}).geco)
    assert isinstance(geco, Geco)
    assert float(geco.loss(terms(), update=False)) == pytest.approx(2 + (3 + 5 + 7 + 11))
    assert geco.log_values() == {"geco/beta": 1.0} and geco.state_dict() == {"beta": 1.0, "err_ema": None}
    only = Geco(GecoSpec(term="nll", goal=1.0, penalises=["seg_kl"]))
    assert float(only.loss(terms(), update=False)) == pytest.approx(2 + 3 + (5 + 7 + 11))


def test_state_round_trips_and_reads_as_a_single_geco_state():
    geco = make_geco(TrainSpec(geco=two()).geco)
    geco.loss(terms())
    state = geco.state_dict()
    assert isinstance(state["beta"], float) and set(state["constraints"]) == {"seg", "sri"}
    fresh = make_geco(TrainSpec(geco=two()).geco)
    fresh.load_state_dict(state)
    assert fresh.summary() == geco.summary()
    assert [g.err_ema for g in fresh.constraints] == [2.0, 5.0]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"penalises": ["seg_kl"]}, "'seg_kl' is named by GECO constraints 'seg' and 'sri'"),
        ({"term": "nll"}, "'nll' is named by GECO constraints 'seg' and 'sri'"),
    ],
)
def test_a_term_belongs_to_one_constraint(change, message):
    with pytest.raises(ValidationError, match=message):
        TrainSpec(geco=two(**change))


def test_one_catch_all_at_most_and_missing_terms_are_named():
    specs = two()
    for s in specs.values():
        s.pop("penalises")
    with pytest.raises(ValidationError, match="all penalise every other term"):
        TrainSpec(geco=specs)
    with pytest.raises(ValidationError, match="term"):
        TrainSpec(geco={})
    geco = make_geco(TrainSpec(geco=two(penalises=["nope"])).geco)
    with pytest.raises(Exception, match=r"train.geco.sri.penalises: no loss term 'nope'"):
        geco.loss(terms())
