"""Pictures for training logs, ``ocf viz`` and ``ocf data inspect``: decompositions,
segmentation overlays, dataset contact sheets, GIFs for video and line charts (PIL, numpy).

Inputs may be torch tensors or numpy arrays; images are float ``[.. c h w]`` in [0, 1].
One channel convention: ``c = 1`` is grey, ``c = 2`` (grey + depth, as ``nshapes`` writes
it) shows its first channel as grey, ``c >= 3`` its first three (RGB).  Label ``l`` is
drawn in ``PALETTE[l % len(PALETTE)]``, ignore (negative) labels in ``IGNORE_COLOUR``.
Outputs are ``uint8 [h w 3]`` arrays or ``PIL.Image``.
"""

from ocf.viz.draw import (
    IGNORE_COLOUR,
    PALETTE,
    colorize,
    image_grid,
    overlay,
    sample_sheet,
    to_uint8,
)
from ocf.viz.figures import (
    decomposition_figure,
    draw_boxes,
    line_plot,
    save_gif,
    video_figure,
)
from ocf.viz.pictures import decomposition_pictures, sample_pictures

__all__ = [
    "IGNORE_COLOUR",
    "PALETTE",
    "colorize",
    "decomposition_figure",
    "decomposition_pictures",
    "draw_boxes",
    "image_grid",
    "line_plot",
    "overlay",
    "sample_pictures",
    "sample_sheet",
    "save_gif",
    "to_uint8",
    "video_figure",
]
