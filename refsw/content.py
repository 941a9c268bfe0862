"""Default content shipped with refsw (see data/content/PROVENANCE.md)."""
from importlib import resources

DEFAULT_IMAGE = "chelsea.png"


def default_image_path() -> str:
    return str(resources.files("refsw") / "data" / "content" / DEFAULT_IMAGE)
