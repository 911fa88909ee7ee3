"""``streamdit serve``: a live studio in the browser (docs/studio.md)."""

from streamdit_jax.studio.server import Studio, StudioOptions
from streamdit_jax.studio.session import Session

__all__ = ["Session", "Studio", "StudioOptions"]
