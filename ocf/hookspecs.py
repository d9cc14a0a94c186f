"""The hooks a plugin may implement.  Each receives a registry; call
``registry.register(Cls, ...)`` for every class you supply (each declares its ``name``; the
kind follows from its base class).  Hook docstrings are the reference documentation
(docs/plugins/hooks.md is checked against them)."""

import pluggy

hookspec = pluggy.HookspecMarker("ocf")
hookimpl = pluggy.HookimplMarker("ocf")


@hookspec
def ocf_register_components(registry):
    """Register model components: ``registry.register(EncoderCls, GrouperCls, ...)`` with
    each class a subclass of a base in :mod:`ocf.components` (encoder, grouper, prior,
    decoder, objective) declaring ``name = "<plugin>.<component>"``.  Its ``needs`` and
    ``provides`` must name record fields; a typo fails the plugin at load."""


@hookspec
def ocf_register_datasets(registry):
    """Register procedural dataset generators: ``registry.register(GeneratorCls, ...)`` with
    each class a subclass of :class:`ocf.data.Generator` declaring its ``name``."""


@hookspec
def ocf_register_metrics(registry):
    """Register evaluation metrics: ``registry.register(MetricCls, ...)`` with each class a
    subclass of :class:`ocf.metrics.EvalMetric` declaring its ``name``."""


@hookspec
def ocf_register_converters(registry):
    """Register dataset converters for ``ocf data convert``: ``registry.register(ConverterCls)``
    with each class a subclass of :class:`ocf.data.convert.Converter` declaring its ``name``
    (the old ``registry.add("converter", name, cls)`` still works, with a DeprecationWarning)."""


@hookspec
def ocf_register_results(registry):
    """Register expected results that ``ocf repro NAME`` reproduces: ``registry.register(result)``
    with each ``result`` an :class:`ocf.results.Result` (a spec, overrides, step budget, seeds,
    the judged metric and its expected range).  Name them ``<plugin>`` or ``<plugin>_<setting>``."""
