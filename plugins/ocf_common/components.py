"""The common plugin's generic components: ``COMPONENTS`` lists ``(kind, name, cls)``."""

from ocf_common.decoders import SpatialBroadcastDecoder
from ocf_common.encoders import CNNEncoder
from ocf_common.objectives import GaussianNLLObjective, KLObjective, MixtureNLLObjective, MSEObjective
from ocf_common.priors import NormalPrior

COMPONENTS = [
    ("encoder", "cnn", CNNEncoder),
    ("decoder", "spatial_broadcast", SpatialBroadcastDecoder),
    ("prior", "normal", NormalPrior),
    ("objective", "mse", MSEObjective),
    ("objective", "gaussian_nll", GaussianNLLObjective),
    ("objective", "mixture_nll", MixtureNLLObjective),
    ("objective", "kl", KLObjective),
]

__all__ = [
    "COMPONENTS",
    "CNNEncoder",
    "SpatialBroadcastDecoder",
    "NormalPrior",
    "MSEObjective",
    "GaussianNLLObjective",
    "MixtureNLLObjective",
    "KLObjective",
]
