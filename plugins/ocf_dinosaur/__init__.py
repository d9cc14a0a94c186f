"""DINOSAUR (Seitzer et al., ICLR 2023, "Bridging the Gap to Real-World Object-Centric
Learning") as an ocf plugin: Slot Attention over the patch features of a frozen
self-supervised ViT (``vit.encoder``), trained to reconstruct those features with an MLP
decoder or an autoregressive transformer decoder.  Builds on ``slot_attention``."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_dinosaur.grouper import DinosaurGrouper
    from ocf_dinosaur.mlp_decoder import MLPPatchDecoder
    from ocf_dinosaur.objective import FeatureReconstruction
    from ocf_dinosaur.transformer_decoder import TransformerPatchDecoder

    registry.register(DinosaurGrouper, MLPPatchDecoder, TransformerPatchDecoder, FeatureReconstruction)
