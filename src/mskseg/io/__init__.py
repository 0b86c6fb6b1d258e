"""Reading and writing volumes, manifests, named folder layouts and tables."""

from mskseg.io.atomic import atomic_path, read_text, write_text
from mskseg.io.volumes import VolumeReadError, read_volume, volume_format, write_volume

__all__ = ["VolumeReadError", "atomic_path", "read_text", "read_volume", "volume_format", "write_text",
           "write_volume"]
