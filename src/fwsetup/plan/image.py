"""What a build's recipe says of its image, read in one place: the framework's official image where the recipe
prefers it, whether the recipe names an image at all, and the tag fwsetup gives an image.

Pure and light (no planner import): the evaluation (plan/evaluate.py, plan/wheels.py), the image plan
(plan/container.py) and the CI matrix (ops/matrix.py) read a build's Docker spec through these. Once a Plan
exists, its `image` (ImagePlan) carries the decided facts and nothing reads the recipe's spec again.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from fwsetup.recipes.schema import Build, DockerSpec

TAG_PREFIX: Final = "fwsetup"  # the registry prefix of the tag an image gets when none is asked for


def official_image(docker: DockerSpec | None) -> str | None:
    """The framework's official image, where the recipe prefers it (use_official); None otherwise."""
    if docker is not None and docker.use_official and docker.official_image:
        return docker.official_image
    return None


def names_an_image(docker: DockerSpec | None) -> bool:
    """Whether the recipe names an image for the build (a base image, or the framework's official one)."""
    return docker is not None and bool(docker.base_image or docker.official_image)


def has_image(build: Build) -> bool:
    """Whether fwsetup can make an image of the build: something to pip install, or an image the recipe names."""
    return bool(build.requirements) or names_an_image(build.docker)


def image_tag(
    framework: str, version: object, variant: object, python: object, prefix: str = TAG_PREFIX
) -> str:
    """The tag an image gets when none is asked for: PREFIX/NAME:VERSION-VARIANT-pyX.Y (a version's characters
    a tag cannot hold become _)."""
    tag_version = re.sub(r"[^A-Za-z0-9_.-]", "_", str(version))
    return f"{prefix}/{framework}:{tag_version}-{variant}-py{python}"
