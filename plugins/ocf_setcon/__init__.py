"""SetCon (Löwe et al., 2020) — object-centric video models trained by contrasting sets of
slots — as an ocf plugin.  Builds on the ``slot_attention`` plugin."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_setcon.encoder import SetConEncoder
    from ocf_setcon.grouper import SetConGrouper
    from ocf_setcon.objectives import SetInfoNCE, SlotContrast

    registry.register(SetConEncoder, SetConGrouper, SetInfoNCE, SlotContrast)


@hookimpl
def ocf_register_metrics(registry):
    from ocf_setcon.metrics import SetRetrieval

    registry.register(SetRetrieval)


@hookimpl
def ocf_register_results(registry):
    from ocf_setcon.results import RESULTS

    registry.register(*RESULTS)
