"""The demo job: a Mandelbrot image cut into tiles, one ``mandelbrot_tile`` task per tile.

The dashboard paints task ``index`` at column ``index % cols``, row ``index // cols``; the
imaginary part grows downwards (the set is symmetric, so the picture is the familiar one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class DemoLayout:
    """How the demo image is cut into tasks."""

    name: str = "demo"
    cols: int = 10
    rows: int = 8
    tile_width: int = 64
    tile_height: int = 64
    max_iter: int = 200
    region: tuple[float, float, float, float] = (-2.2, 0.8, -1.2, 1.2)

    def tasks(self) -> list[dict[str, Any]]:
        """One ``mandelbrot_tile`` argument object per tile, row by row from the top."""
        re_min, re_max, im_min, im_max = self.region
        step_re = (re_max - re_min) / self.cols
        step_im = (im_max - im_min) / self.rows
        return [
            {
                "region": [
                    re_min + col * step_re,
                    re_min + (col + 1) * step_re,
                    im_min + row * step_im,
                    im_min + (row + 1) * step_im,
                ],
                "width": self.tile_width,
                "height": self.tile_height,
                "max_iter": self.max_iter,
            }
            for row in range(self.rows)
            for col in range(self.cols)
        ]

    def describe(self) -> dict[str, Any]:
        """What the dashboard needs to paint it (``server.demo`` in docs/dashboard.md)."""
        return {
            "name": self.name,
            "cols": self.cols,
            "rows": self.rows,
            "tile_width": self.tile_width,
            "tile_height": self.tile_height,
            "max_iter": self.max_iter,
        }


DEMO: Final = DemoLayout()
