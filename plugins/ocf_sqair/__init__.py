"""AIR and SQAIR (Eslami et al., 2016; Kosiorek et al., 2018) as an ocf plugin: objects
with explicit presence, location and appearance, discovered and propagated frame by
frame, trained with an importance-weighted bound and VIMCO."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_sqair.decoder import GlimpseDecoder
    from ocf_sqair.encoder import FrameEncoder
    from ocf_sqair.grouper import SqairGrouper
    from ocf_sqair.objective import IwaeObjective
    from ocf_sqair.prior import SqairPrior

    registry.register(FrameEncoder, SqairGrouper, SqairPrior, GlimpseDecoder, IwaeObjective)


@hookimpl
def ocf_register_metrics(registry):
    from ocf_sqair.metrics import DiscoveryRate, IwaeBound

    registry.register(IwaeBound, DiscoveryRate)


@hookimpl
def ocf_register_results(registry):
    from ocf_sqair.results import RESULTS

    registry.register(*RESULTS)
