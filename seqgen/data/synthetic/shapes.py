"""A procedurally drawn captioning set: two coloured shapes per image, with compositional captions.

Each image shows two shapes (circle, square or triangle; five colours; small or large) in one of four
spatial relations, and comes with every phrasing of its description, e.g. "a small red circle above a
large blue square", "a large blue square below a small red circle", "there is a small red circle above
a large blue square". Scene i of a split depends only on (seed, i), so a split's first images are the
same whatever its size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (40, 70, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 40, 180),
}
KINDS = ("circle", "square", "triangle")
SIZES: dict[str, float] = {"small": 0.08, "large": 0.16}
"""Radius of the circle each shape fits in, as a fraction of the image side."""
RELATIONS: dict[str, str] = {"above": "below", "below": "above", "to the left of": "to the right of",
                             "to the right of": "to the left of"}
"""Each relation and its converse (A above B  ⇔  B below A)."""
BACKGROUND = (255, 255, 255)
_FRAMES = ("a {a} {rel} a {b}", "there is a {a} {rel} a {b}", "a {a} is {rel} a {b}",
           "the {a} is {rel} the {b}")
"""Phrasings of "A rel B"; each is used for the relation and for its converse."""

SYMBOLS: list[str] = sorted({word for frame in _FRAMES for word in frame.split() if not word.startswith("{")}
                            | {word for rel in RELATIONS for word in rel.split()}
                            | set(COLOURS) | set(KINDS) | set(SIZES))
"""Every word a caption can use."""


@dataclass(frozen=True)
class Shape:
    """One drawn shape: its words and its centre (x, y) in pixels."""

    size: str
    colour: str
    kind: str
    x: float
    y: float

    @property
    def words(self) -> str:
        return f"{self.size} {self.colour} {self.kind}"


@dataclass(frozen=True)
class Scene:
    """Two shapes such that `first` is `relation` `second`."""

    first: Shape
    relation: str
    second: Shape


def random_scene(seed: int, index: int, image_size: int = 64) -> Scene:
    """Scene `index` of the split drawn with `seed`.

    Along the relation's axis the centres sit at 0.25 and 0.75 of the side (± 0.08), across it at
    0.5 ± 0.08, so the shapes never overlap and the relation is never ambiguous.
    """
    rng = np.random.default_rng([seed, index])
    relation = list(RELATIONS)[rng.integers(len(RELATIONS))]
    along = (0.25, 0.75) if relation in ("above", "to the left of") else (0.75, 0.25)
    shapes = []
    for centre in along:
        size = list(SIZES)[rng.integers(len(SIZES))]
        colour = list(COLOURS)[rng.integers(len(COLOURS))]
        kind = KINDS[rng.integers(len(KINDS))]
        across, jitter = 0.5 + rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08)
        x, y = (across, centre + jitter) if relation in ("above", "below") else (centre + jitter, across)
        shapes.append(Shape(size, colour, kind, x * image_size, y * image_size))
    return Scene(shapes[0], relation, shapes[1])


def render(scene: Scene, image_size: int = 64) -> Image.Image:
    """Draw the scene on a white RGB image of image_size x image_size pixels."""
    image = Image.new("RGB", (image_size, image_size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for shape in (scene.first, scene.second):
        r, x, y, fill = SIZES[shape.size] * image_size, shape.x, shape.y, COLOURS[shape.colour]
        if shape.kind == "circle":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        elif shape.kind == "square":
            half = 0.8 * r
            draw.rectangle((x - half, y - half, x + half, y + half), fill=fill)
        else:  # an upward triangle inscribed in the circle, its centroid at the centre
            draw.polygon([(x, y - r), (x - 0.866 * r, y + r / 2), (x + 0.866 * r, y + r / 2)], fill=fill)
    return image


def captions(scene: Scene) -> list[str]:
    """Every phrasing of the scene: each frame for "first relation second", then for the converse."""
    a, b, rel = scene.first.words, scene.second.words, scene.relation
    return ([frame.format(a=a, rel=rel, b=b) for frame in _FRAMES]
            + [frame.format(a=b, rel=RELATIONS[rel], b=a) for frame in _FRAMES])


def make_split(n: int, seed: int, image_size: int = 64) -> list[dict]:
    """`n` captioned images; image i is the same for a given seed whatever n.

    Returns:
        One dict per image: `image`, PNG bytes of an RGB image_size x image_size image; `captions`, every
        phrasing of what it shows (lowercase words from `SYMBOLS`, no punctuation).
    """
    examples = []
    for index in range(n):
        scene = random_scene(seed, index, image_size)
        buffer = io.BytesIO()
        render(scene, image_size).save(buffer, format="PNG")
        examples.append({"image": buffer.getvalue(), "captions": captions(scene)})
    return examples
