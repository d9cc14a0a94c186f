"""Field types and the model configuration shared by every Spec (component parameters,
metric and generator options, the spec's own sections).

Every numeric field of a Spec has a range, so a spec that passes ``ocf build`` cannot crash
training with an absurd value.  Floats are finite: :data:`SPEC_CONFIG` (used by
:class:`ocf.components.ComponentSpec`, :class:`ocf.metrics.MetricSpec` and
:class:`ocf.data.Generator.Options`) refuses NaN, +inf and -inf in every float field of a
model, nested tuples and lists included.  A field where infinity means something opts out
with ``Annotated[float, Field(allow_inf_nan=True)]`` and says so in its description.

Plugin authors annotate fields with these types (``num_slots: Size = Field(7, description=...)``):

============================  ====================================================
``Size``                      an int in [1, MAX_SIZE]: channels, widths, slots, dims
``NonNegativeSize``           an int in [0, MAX_SIZE]: padding, optional upsampling
``Repeats``                   an int in [1, MAX_REPEATS]: iterations, layers, particles
``Seed``                      an int in [0, 2**32)
``FiniteFloat``               any finite float
``PositiveFiniteFloat``       a finite float > 0: rates, scales, temperatures
``NonNegativeFiniteFloat``    a finite float >= 0: weights, penalties
``UnitFloat``                 a float in [0, 1]
============================  ====================================================
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Gt, Le, Lt
from pydantic import ConfigDict, Field

#: The largest size a Spec field accepts (a tensor dimension, width, number of slots); the
#: memory a model needs is checked separately when it is built.
MAX_SIZE = 1 << 20
#: The most repetitions a Spec field accepts (iterations, layers, particles, restarts): a
#: loop this long already runs for minutes per step.
MAX_REPEATS = 1000
#: The most steps (and step intervals, sample counts) a spec may ask for.
MAX_STEPS = 10**9
#: Seeds are integers in [0, SEED_LIMIT): what numpy and torch both accept, with room for the
#: seeds derived from them.
SEED_LIMIT = 1 << 32

#: Unknown keys are errors; floats are finite.  ``frozen`` is added by component Specs.
SPEC_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

Size = Annotated[int, Ge(1), Le(MAX_SIZE)]
NonNegativeSize = Annotated[int, Ge(0), Le(MAX_SIZE)]
Repeats = Annotated[int, Ge(1), Le(MAX_REPEATS)]
#: a count of elements (pixels, locations, samples) rather than a layer size: [1, 10^12]
Count = Annotated[int, Ge(1), Le(10**12)]
Seed = Annotated[int, Ge(0), Lt(SEED_LIMIT)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
PositiveFiniteFloat = Annotated[float, Gt(0), Field(allow_inf_nan=False)]
NonNegativeFiniteFloat = Annotated[float, Ge(0), Field(allow_inf_nan=False)]
UnitFloat = Annotated[float, Ge(0), Le(1)]

__all__ = [
    "Count",
    "MAX_REPEATS",
    "MAX_SIZE",
    "MAX_STEPS",
    "SEED_LIMIT",
    "SPEC_CONFIG",
    "FiniteFloat",
    "NonNegativeFiniteFloat",
    "NonNegativeSize",
    "PositiveFiniteFloat",
    "Repeats",
    "Seed",
    "Size",
    "UnitFloat",
]
