"""The family's names before it became its own plugin (``setcon.moco`` and so on), kept for
one release: each is a subclass of the new component whose construction warns."""

from __future__ import annotations

import warnings

from ocf.components import BuildContext, ComponentSpec
from ocf_contrastive.objective import BYOL, DINO, ContrastiveObjective, MoCo, NTXent, SimSiam

#: old registered name → the component that replaces it
RENAMED: dict[str, type[ContrastiveObjective]] = {
    "setcon.nt_xent": NTXent,
    "setcon.moco": MoCo,
    "setcon.byol": BYOL,
    "setcon.simsiam": SimSiam,
    "setcon.dino": DINO,
}


def deprecated_alias(cls: type[ContrastiveObjective], old: str) -> type[ContrastiveObjective]:
    """A subclass of ``cls`` registered as ``old``: same Spec and behaviour, and building it
    raises a DeprecationWarning that names the new type."""

    def __init__(self: ContrastiveObjective, spec: ComponentSpec, ctx: BuildContext) -> None:
        warnings.warn(
            f"objective type {old!r} is deprecated and will be removed in the next release; "
            f"write type: {cls.name} (the same objective, now in the contrastive plugin)",
            DeprecationWarning,
            stacklevel=2,
        )
        cls.__init__(self, spec, ctx)

    doc = f"Deprecated name of {cls.name}: write type: {cls.name}."
    attrs = {"name": old, "__init__": __init__, "__doc__": doc, "__module__": __name__}
    return type(f"Deprecated{cls.__name__}", (cls,), attrs)


ALIASES: dict[str, type[ContrastiveObjective]] = {old: deprecated_alias(cls, old) for old, cls in RENAMED.items()}
