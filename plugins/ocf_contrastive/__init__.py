"""The contrastive family (SimCLR's NT-Xent, MoCo, BYOL, SimSiam, DINO) as objectives any
encoder or grouper can use, on time views of a clip or on augmented views.  The names the
family had in the setcon plugin (``setcon.moco`` ...) still build, with a DeprecationWarning."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_contrastive.deprecated import ALIASES
    from ocf_contrastive.objective import BYOL, DINO, MoCo, NTXent, SimSiam

    registry.register(NTXent, MoCo, BYOL, SimSiam, DINO)
    for old, alias in ALIASES.items():
        registry.register(alias, name=old)
