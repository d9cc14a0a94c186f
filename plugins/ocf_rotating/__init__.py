"""Rotating Features (Löwe et al., NeurIPS 2023) and the Complex AutoEncoder (its n = 2
case) as an ocf plugin: rotating layers, the 4Shapes autoencoder and the clustering of
output orientations that turns them into object masks.  The loss is MSE (``rotating.mse``, the same as the common ``mse``)."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_rotating.cluster import RotatingCluster
    from ocf_rotating.model import RotatingDecoder, RotatingEncoder
    from ocf_rotating.objective import RotatingMSE

    registry.add("encoder", "rotating.encoder", RotatingEncoder)
    registry.add("decoder", "rotating.decoder", RotatingDecoder)
    registry.add("grouper", "rotating.cluster", RotatingCluster)
    registry.add("objective", "rotating.mse", RotatingMSE)


@hookimpl
def ocf_register_results(registry):
    from ocf_rotating.results import RESULTS

    for result in RESULTS:
        registry.add("result", result.name, result)
