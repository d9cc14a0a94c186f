"""The common plugin's generic components: ``CLASSES`` (registered as they are) and
``COMPONENTS``, the same as ``(kind, name, cls)``."""

from ocf_common.decoders import SpatialBroadcastDecoder
from ocf_common.encoders import CNNEncoder
from ocf_common.objectives import GaussianNLLObjective, KLObjective, MixtureNLLObjective, MSEObjective
from ocf_common.priors import NormalPrior

CLASSES = (
    CNNEncoder,
    SpatialBroadcastDecoder,
    NormalPrior,
    MSEObjective,
    GaussianNLLObjective,
    MixtureNLLObjective,
    KLObjective,
)
COMPONENTS = [(cls.kind, cls.name, cls) for cls in CLASSES]

__all__ = [
    "CLASSES",
    "COMPONENTS",
    "CNNEncoder",
    "SpatialBroadcastDecoder",
    "NormalPrior",
    "MSEObjective",
    "GaussianNLLObjective",
    "MixtureNLLObjective",
    "KLObjective",
]
