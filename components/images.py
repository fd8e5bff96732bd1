"""Container images the components run on (built from images/)."""

from components import __version__

REGISTRY = "ghcr.io/eo-kfp-services"
EO_IMAGE = f"{REGISTRY}/eo:{__version__}"
