"""Rotating Features' training loss under the plugin's own name."""

from ocf_common.objectives import MSEObjective


class RotatingMSE(MSEObjective):
    """Rotating Features' loss: MSE of the reconstruction against the input image or feature map (the common `mse`, registered under this plugin's name)."""
