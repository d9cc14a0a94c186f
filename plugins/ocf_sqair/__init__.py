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

    registry.add("encoder", "sqair.encoder", FrameEncoder)
    registry.add("grouper", "sqair.grouper", SqairGrouper)
    registry.add("prior", "sqair.prior", SqairPrior)
    registry.add("decoder", "sqair.glimpse", GlimpseDecoder)
    registry.add("objective", "sqair.iwae", IwaeObjective)


@hookimpl
def ocf_register_metrics(registry):
    from ocf_sqair.metrics import DiscoveryRate, IwaeBound

    registry.add("metric", IwaeBound.name, IwaeBound)
    registry.add("metric", DiscoveryRate.name, DiscoveryRate)


@hookimpl
def ocf_register_results(registry):
    from ocf_sqair.results import RESULTS

    for result in RESULTS:
        registry.add("result", result.name, result)
