"""The image-builder flavor's 0.1 import path, which servers registered then still hold.

The code lives in `flavors/image_builder.py`, the light part of the package.
"""

from .flavors.image_builder import (
    GCPBuildAccountImageBuilder as GCPBuildAccountImageBuilder,
)
from .flavors.image_builder import (
    GCPBuildAccountImageBuilderConfig as GCPBuildAccountImageBuilderConfig,
)
from .flavors.image_builder import (
    GCPBuildAccountImageBuilderFlavor as GCPBuildAccountImageBuilderFlavor,
)
