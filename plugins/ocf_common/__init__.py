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

    for name, cls in GENERATORS.items():
        registry.add("dataset", name, cls)


@hookimpl
def ocf_register_metrics(registry):
    from ocf.generation_metrics import GENERATION_METRICS
    from ocf.metrics import METRICS
    from ocf_common.relation import RelationAccuracy

    for name, cls in {**METRICS, **GENERATION_METRICS, RelationAccuracy.name: RelationAccuracy}.items():
        registry.add("metric", name, cls)
