"""ocf's common plugin: generic components every paper reuses, the procedural datasets and
the standard metrics.  Registered exactly like a third-party plugin (entry point ``common``
in group ``ocf``)."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_common.components import CLASSES

    registry.register(*CLASSES)


@hookimpl
def ocf_register_datasets(registry):
    from ocf_common.datasets import GENERATORS

    registry.register(*GENERATORS.values())


@hookimpl
def ocf_register_metrics(registry):
    from ocf.metrics import GENERATION_METRICS, METRICS
    from ocf_common.relation import RelationAccuracy

    registry.register(*METRICS.values(), *GENERATION_METRICS.values(), RelationAccuracy)
