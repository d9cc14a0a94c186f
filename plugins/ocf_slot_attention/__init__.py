"""Slot Attention (Locatello et al., 2020) as an ocf plugin."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_slot_attention.grouper import GaussianSlotAttentionGrouper, SlotAttentionGrouper

    registry.add("grouper", "slot_attention.grouper", SlotAttentionGrouper)
    registry.add("grouper", "slot_attention.gaussian_grouper", GaussianSlotAttentionGrouper)


@hookimpl
def ocf_register_results(registry):
    from ocf_slot_attention.results import RESULTS

    for result in RESULTS:
        registry.add("result", result.name, result)
