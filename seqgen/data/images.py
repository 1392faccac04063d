"""Images for captioning: checked once at load time, decoded lazily when a batch is collated.

An image is referred to by a file path (str), by its encoded bytes (PNG, JPEG, ...; the synthetic
`shapes` source), or by the `datasets` Image feature's undecoded {"bytes": ..., "path": ...} dict.
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

ImageRef = str | bytes | dict


def _parts(image: ImageRef) -> tuple[bytes | None, str | None]:
    if isinstance(image, dict):
        return image.get("bytes"), image.get("path")
    return (image, None) if isinstance(image, bytes) else (None, image)


def describe(image: ImageRef) -> str:
    """A name for an image in error messages: its path, or the size of its encoded bytes."""
    data, path = _parts(image)
    return path or f"<{len(data or b'')} bytes of image data>"


def _open(image: ImageRef) -> Image.Image:
    data, path = _parts(image)
    return Image.open(io.BytesIO(data) if data is not None else path)


def check_image(image: ImageRef) -> None:
    """Fail early on an image that is missing or does not decode.

    Raises:
        UserError: naming the file.
    """
    name = describe(image)
    try:
        with _open(image) as img:
            img.verify()
    except FileNotFoundError:
        raise UserError(f"image file not found: {name}") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise UserError(f"image {name} does not decode: {e}") from None


def load_pixels(image: ImageRef, size: int) -> torch.Tensor:
    """Decode an image as RGB, resize it to size x size and normalise it with the ImageNet statistics.

    Returns:
        (3, size, size) float32.

    Raises:
        UserError: the image does not decode (naming the file).
    """
    try:
        with _open(image) as img:
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise UserError(f"image {describe(image)} does not decode: {e}") from None
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (pixels - mean) / std
