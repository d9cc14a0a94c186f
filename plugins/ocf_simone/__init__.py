"""SIMONe (Kabra et al., 2021) as an ocf plugin: view-invariant object latents and
per-frame latents from video."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_simone.decoder import PixelMLPDecoder
    from ocf_simone.encoder import SimoneEncoder
    from ocf_simone.grouper import SimonePooling
    from ocf_simone.losses import SimoneLikelihood, SimonePrior

    registry.add("encoder", "simone.encoder", SimoneEncoder)
    registry.add("grouper", "simone.pooling", SimonePooling)
    registry.add("prior", "simone.prior", SimonePrior)
    registry.add("decoder", "simone.pixel_mlp", PixelMLPDecoder)
    registry.add("objective", "simone.likelihood", SimoneLikelihood)


@hookimpl
def ocf_register_results(registry):
    from ocf_simone.results import RESULTS

    for result in RESULTS:
        registry.add("result", result.name, result)
