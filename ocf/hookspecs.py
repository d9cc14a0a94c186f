"""The hooks a plugin may implement.  Each receives a registry; call
``registry.add(kind, name, obj)`` for every thing you supply.  Hook docstrings are the
reference documentation (docs/plugins/hooks.md is checked against them)."""

import pluggy

hookspec = pluggy.HookspecMarker("ocf")
hookimpl = pluggy.HookimplMarker("ocf")


@hookspec
def ocf_register_components(registry):
    """Register model components: ``registry.add(kind, name, cls)`` with kind one of
    encoder, grouper, prior, decoder, objective and ``cls`` a subclass of the matching
    base in :mod:`ocf.components`.  Name them ``<plugin>.<component>``."""


@hookspec
def ocf_register_datasets(registry):
    """Register procedural dataset generators: ``registry.add("dataset", name, cls)`` with
    ``cls`` a subclass of :class:`ocf.data.Generator`."""


@hookspec
def ocf_register_metrics(registry):
    """Register evaluation metrics: ``registry.add("metric", name, cls)`` with ``cls`` a
    subclass of :class:`ocf.metrics.EvalMetric`."""


@hookspec
def ocf_register_results(registry):
    """Register expected results that ``ocf repro NAME`` reproduces:
    ``registry.add("result", result.name, result)`` with ``result`` an
    :class:`ocf.results.Result` (a spec, overrides, step budget, seeds, the judged metric and
    its expected range).  Name them ``<plugin>`` or ``<plugin>_<setting>``."""
