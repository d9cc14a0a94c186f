"""SIMONe (Kabra et al., 2021) as an ocf plugin: view-invariant object latents and
per-frame latents from video."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_simone.decoder import PixelMLPDecoder
    from ocf_simone.encoder import SimoneEncoder
    from ocf_simone.grouper import SimonePooling
    from ocf_simone.objective import SimoneLikelihood
    from ocf_simone.prior import SimonePrior

    registry.register(SimoneEncoder, SimonePooling, SimonePrior, PixelMLPDecoder, SimoneLikelihood)


@hookimpl
def ocf_register_results(registry):
    from ocf_simone.results import RESULTS

    registry.register(*RESULTS)
