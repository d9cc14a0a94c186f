"""The mutation corpus (issue 20): every shipped spec, mutated (keys removed, values replaced by
other types, out-of-range, non-finite and huge numbers, unknown keys added), goes through what
``ocf build`` checks before its dry run: reading rules, validation against the registry, the
device, and assembling the model (on the ``meta`` device, so huge sizes allocate nothing).
Each mutant is either accepted or refused with a :class:`UserError` (what ``ocf build`` exits 2
on) whose every line starts with the key path it is about; never another exception, never slow.

Bounded and deterministic: a fixed number of derandomized examples per spec."""

import copy
import math
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocf import assembly
from ocf import plugins as ocf_plugins
from ocf import spec as spec_mod
from ocf.errors import UserError
from ocf.run.setup import check_device

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "model" in spec_mod.read_yaml(p))
#: A refusal line: a key path of the spec, a colon, the problem (or the count of the rest).
PROBLEM = re.compile(r"^[^\s:]+: \S|^\.\.\. and [\d,]+ more problems$")

VALUES = [
    None,
    True,
    "x",
    "",
    "nan",
    "1e999",
    "x" * 10_000,
    [],
    [1, 2],
    {},
    {"a": 1},
    0,
    -1,
    1,
    0.5,
    -0.5,
    1e-300,
    1e308,
    10**9,
    2**31,
    2**70,
    -(2**70),
    10**400,
    math.nan,
    math.inf,
    -math.inf,
]
OPS = ("remove", "replace", "unknown")
#: Examples per shipped spec (about 0.1 s each).
EXAMPLES = 12


def paths(node, prefix=()):
    """Every key path in a spec, inner nodes included."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    out = []
    for key, value in items:
        out.append((*prefix, key))
        out.extend(paths(value, (*prefix, key)))
    return out


def mutate(data, path, op, value):
    """Apply one mutation in place; a path a previous mutation removed is left alone."""
    parent = data
    for key in path[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return
    key = path[-1]
    if not isinstance(parent, (dict, list)) or (isinstance(parent, list) and key >= len(parent)):
        return
    if isinstance(parent, dict) and key not in parent:
        return
    if op == "remove":
        del parent[key]
    elif op == "replace":
        parent[key] = value
    elif isinstance(parent[key], dict):
        parent[key]["zz_unknown"] = value
    elif isinstance(parent, dict):
        parent["zz_unknown"] = value


def build_checks(data):
    """What ``ocf build`` runs before its dry run (the model assembled on the meta device)."""
    resolved = spec_mod.resolve(data, ocf_plugins.default().registry)
    check_device(resolved.spec.train)
    with torch.device("meta"):
        assembly.build(resolved, dry_run=False)


def assert_clean(data):
    t0 = time.perf_counter()
    try:
        build_checks(data)
    except UserError as exc:
        lines = str(exc).splitlines()
        assert lines, "an empty refusal"
        for line in lines:
            assert PROBLEM.match(line), f"a refusal line names no key path: {line[:300]!r}"
    assert time.perf_counter() - t0 < 10


def mutations(spec):
    return st.lists(
        st.tuples(st.sampled_from(paths(spec)), st.sampled_from(OPS), st.sampled_from(VALUES)), min_size=1, max_size=3
    )


@pytest.mark.parametrize("path", SPECS, ids=[str(p.relative_to(ROOT / "configs")) for p in SPECS])
def test_mutated_shipped_specs_are_accepted_or_refused_cleanly(path):
    spec = spec_mod.read_yaml(path)
    build_checks(copy.deepcopy(spec))  # the shipped spec itself passes

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=timedelta(seconds=10),
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(mutations(spec))
    def check(changes):
        data = copy.deepcopy(spec)
        for where, op, value in changes:
            mutate(data, where, op, value)
        assert_clean(data)

    check()


def test_the_corpus_covers_every_shipped_spec():
    assert len(SPECS) >= 30
    assert all(PROBLEM.match(line) for line in ["model.grouper.num_slots: too big", "... and 3 more problems"])
    assert not PROBLEM.match("grouper x needs the size of features.tokens")
