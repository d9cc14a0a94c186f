"""``train.geco``'s spec: one GECO constraint, or several by name (see :mod:`ocf.geco`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, WrapValidator, model_validator

from ocf.fields import SPEC_CONFIG, FiniteFloat, PositiveFiniteFloat

__all__ = ["GecoConstraints", "GecoSpec"]


class GecoSpec(BaseModel):
    """GECO (Rezende & Viola, 2018) as in GENESIS: loss = err + β·(other terms); β is
    multiplied by exp(step_size · (goal − EMA(err))), with ``speedup`` × step while the
    constraint is satisfied, clamped to [beta_min, beta_max]."""

    model_config = SPEC_CONFIG  # unknown keys are errors; floats are finite

    term: str | list[str] = Field(
        description="the loss term treated as the reconstruction error (e.g. 'nll'), or several whose sum is "
        "(e.g. [nll, ordered_nll])"
    )
    goal: FiniteFloat = Field(description="target value of that term (same units as the term)")
    step_size: float = Field(1e-5, gt=0)
    alpha: float = Field(0.99, ge=0, lt=1, description="EMA decay of the error")
    speedup: PositiveFiniteFloat | None = Field(10.0, description="multiplies step_size while err is below goal")
    beta_init: float = Field(1.0, gt=0)
    beta_min: float = Field(1e-10, gt=0)
    beta_max: float = Field(1e10, gt=0)
    penalises: list[str] | None = Field(
        None, description="the loss terms β multiplies (null: every term that no other GECO constraint names)"
    )

    @model_validator(mode="after")
    def _ordered_bounds(self):
        if self.beta_min > self.beta_max:
            raise ValueError(f"beta_min {self.beta_min} is above beta_max {self.beta_max}")
        return self


def _check_constraints(specs: dict[str, GecoSpec]) -> dict[str, GecoSpec]:
    """Several named GECO constraints: each term named by one constraint only, one catch-all at most."""
    owner: dict[str, str] = {}
    for name, spec in specs.items():
        for term in ([spec.term] if isinstance(spec.term, str) else spec.term) + list(spec.penalises or []):
            if term in owner:
                raise ValueError(f"loss term {term!r} is named by GECO constraints {owner[term]!r} and {name!r}")
            owner[term] = name
    catch_all = [n for n, spec in specs.items() if spec.penalises is None]
    if len(catch_all) > 1:
        raise ValueError(f"GECO constraints {catch_all} all penalise every other term: give each but one `penalises`")
    return specs


_NAMED_GECOS = TypeAdapter(dict[str, GecoSpec])


def _geco_form(value: Any, handler: Any) -> Any:
    """``train.geco``: one constraint (a mapping with ``term``) or several by name (a mapping of mappings)."""
    if value is None or isinstance(value, GecoSpec):
        return value
    if isinstance(value, dict) and value and "term" not in value and all(isinstance(v, dict) for v in value.values()):
        return _check_constraints(_NAMED_GECOS.validate_python(value))
    return GecoSpec.model_validate(value)


GecoConstraints = Annotated[GecoSpec | dict[str, GecoSpec] | None, WrapValidator(_geco_form)]
