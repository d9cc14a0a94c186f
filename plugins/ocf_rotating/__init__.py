"""Rotating Features (Löwe et al., NeurIPS 2023) and the Complex AutoEncoder (its n = 2
case) as an ocf plugin: rotating layers, the 4Shapes autoencoder and the clustering of
output orientations that turns them into object masks.  The loss is MSE (``rotating.mse``,
the common ``mse`` under the plugin's name)."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_common.objectives import MSEObjective
    from ocf_rotating.decoder import RotatingDecoder
    from ocf_rotating.encoder import RotatingEncoder
    from ocf_rotating.grouper import RotatingCluster

    registry.register(RotatingEncoder, RotatingDecoder, RotatingCluster)
    registry.register(MSEObjective, name="rotating.mse")  # the common mse under the plugin's name


@hookimpl
def ocf_register_results(registry):
    from ocf_rotating.results import RESULTS

    registry.register(*RESULTS)
