"""Slot Attention (Locatello et al., 2020) as an ocf plugin."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_slot_attention.grouper import GaussianSlotAttentionGrouper, SlotAttentionGrouper

    registry.register(SlotAttentionGrouper, GaussianSlotAttentionGrouper)


@hookimpl
def ocf_register_results(registry):
    from ocf_slot_attention.results import RESULTS

    registry.register(*RESULTS)
