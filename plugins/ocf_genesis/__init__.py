"""GENESIS-v2 (Engelcke et al., 2021) as an ocf plugin: a UNet encoder, instance-colouring
stick-breaking (IC-SBP) into a randomly ordered, independent Gaussian slot posterior, a
spatial-broadcast decoder and an optional autoregressive LSTM slot prior; trained with the
mixture likelihood under the core's GECO (``train.geco``)."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_genesis.decoder import GenesisDecoder
    from ocf_genesis.encoder import UNetEncoder
    from ocf_genesis.grouper import ICSBPGrouper
    from ocf_genesis.prior import AutoregressivePrior

    registry.register(UNetEncoder, ICSBPGrouper, GenesisDecoder, AutoregressivePrior)


@hookimpl
def ocf_register_metrics(registry):
    from ocf_genesis.metrics import AttentionFgAri

    registry.register(AttentionFgAri)


@hookimpl
def ocf_register_results(registry):
    from ocf_genesis.results import RESULTS

    registry.register(*RESULTS)
