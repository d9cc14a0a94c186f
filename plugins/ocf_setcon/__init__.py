"""SetCon (Löwe et al., 2020) — object-centric video models trained by contrasting sets of
slots — and the contrastive objective family (NT-Xent, MoCo, BYOL, SimSiam, DINO) as an ocf
plugin.  Builds on the ``slot_attention`` plugin."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_setcon.grouper import SetConGrouper
    from ocf_setcon.objectives import SetInfoNCE, SlotContrast

    registry.add("grouper", "setcon.grouper", SetConGrouper)
    registry.add("objective", "setcon.set_infonce", SetInfoNCE)
    registry.add("objective", "setcon.slot_contrast", SlotContrast)

    from ocf_setcon.contrastive import FAMILY

    for name, cls in FAMILY.items():
        registry.add("objective", f"setcon.{name}", cls)


@hookimpl
def ocf_register_metrics(registry):
    from ocf_setcon.metrics import SetRetrieval

    registry.add("metric", "setcon.retrieval", SetRetrieval)


@hookimpl
def ocf_register_results(registry):
    from ocf_setcon.results import RESULTS

    for result in RESULTS:
        registry.add("result", result.name, result)
