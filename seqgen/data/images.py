"""Images for captioning: checked once at load time, decoded lazily when a batch is collated.

An image is referred to either by a file path (str) or by its encoded bytes (PNG, JPEG, ...), which is
how the `datasets` Image feature and the synthetic `shapes` source store it.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from seqgen.errors import UserError

# torchvision's ImageNet statistics, which pretrained vision encoders expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageRef = str | bytes


def describe(image: ImageRef) -> str:
    """A name for an image in error messages: its path, or the size of its encoded bytes."""
    return image if isinstance(image, str) else f"<{len(image)} bytes of image data>"


def _open(image: ImageRef) -> Image.Image:
    return Image.open(io.BytesIO(image) if isinstance(image, bytes) else image)


def check_image(image: ImageRef, name: str | None = None) -> None:
    """Fail early on an image that is missing or does not decode.

    Raises:
        UserError: naming the file (or `name`).
    """
    name = name or describe(image)
    try:
        with _open(image) as img:
            img.verify()
    except FileNotFoundError:
        raise UserError(f"image file not found: {name}") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise UserError(f"image {name} does not decode: {e}") from None


def load_pixels(image: ImageRef, size: int, name: str | None = None) -> torch.Tensor:
    """Decode an image as RGB, resize it to size x size and normalise it with the ImageNet statistics.

    Returns:
        (3, size, size) float32.

    Raises:
        UserError: the image does not decode (naming the file or `name`).
    """
    try:
        with _open(image) as img:
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise UserError(f"image {name or describe(image)} does not decode: {e}") from None
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (pixels - mean) / std
