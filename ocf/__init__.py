"""ocf: an object-centric learning framework.

Models are assembled from five kinds of component (Encoder, Grouper, Prior, Decoder,
Objective) declared in a YAML spec and supplied by plugins."""

__version__ = "0.1.0"
