"""Paint the Mandelbrot set to a PNG from 48 tiles, computed on the grid by ``client.map``.

The 512 x 384 image is cut into 64 x 64 tiles; each is one task of the built-in
``mandelbrot_tile`` op (escape-time counts of a rectangle of the complex plane). The counts
come back in input order, are coloured and written as a PNG with the standard library alone.

Run it against a running coordinator with at least one worker connected (a browser tab on
http://127.0.0.1:8765/, or ``browsergrid worker ws://127.0.0.1:8765``):

    python examples/mandelbrot.py                      # writes mandelbrot.png here
    python examples/mandelbrot.py http://HOST:PORT --token TOKEN --output grid.png

It prints, once every tile is back:

    wrote mandelbrot.png: 512 x 384 pixels from 48 tiles (1.2 s)
"""

from __future__ import annotations

import argparse
import struct
import time
import zlib
from typing import Any

from browsergrid import Client

WIDTH, HEIGHT, TILE = 512, 384, 64
RE_MIN, RE_MAX, IM_MIN, IM_MAX = -2.25, 0.75, -1.125, 1.125  # 4:3, as the image
MAX_ITER = 256


def tiles() -> list[dict[str, Any]]:
    """The arguments of each tile's task, row of tiles by row of tiles, from the top (the
    largest imaginary part), each row of tiles from the left."""
    step_re = (RE_MAX - RE_MIN) / WIDTH
    step_im = (IM_MAX - IM_MIN) / HEIGHT
    tasks = []
    for top in range(0, HEIGHT, TILE):
        for left in range(0, WIDTH, TILE):
            im_max = IM_MAX - top * step_im
            re_min = RE_MIN + left * step_re
            region = [re_min, re_min + TILE * step_re, im_max - TILE * step_im, im_max]
            tasks.append({"region": region, "width": TILE, "height": TILE, "max_iter": MAX_ITER})
    return tasks


def colour(count: int) -> bytes:
    """Black inside the set; outside, from purple (escapes at once) through orange to yellow."""
    if count >= MAX_ITER:
        return b"\x00\x00\x00"
    t = (count / MAX_ITER) ** 0.3
    return bytes((int(255 * min(1, 2 * t)), int(255 * t * t), int(255 * (1 - t) * 0.6 + 40 * t)))


def write_png(path: str, width: int, height: int, rows: list[bytes]) -> None:
    """An 8-bit RGB PNG: the signature, then IHDR, IDAT (zlib of the rows) and IEND chunks."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB
    pixels = b"".join(b"\x00" + row for row in rows)  # each row starts with filter type 0
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n")
        file.write(chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels, 9)))
        file.write(chunk(b"IEND", b""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8765", help="the coordinator")
    parser.add_argument("--token", help="its admin token (found by itself on the same machine)")
    parser.add_argument("--output", default="mandelbrot.png", help="the PNG file to write")
    options = parser.parse_args()

    tasks = tiles()
    with Client(options.url, token=options.token) as client:
        print(f"submitting {len(tasks)} tiles to {client.http_url}; waiting for workers...")
        started = time.monotonic()
        results = list(client.map("mandelbrot_tile", tasks))  # in the order of tasks
        seconds = time.monotonic() - started

    # The tile in row of tiles r, column c was task r * columns + c. Its counts go row by
    # row upwards from the tile's im_min; the image's rows go downwards: flip each tile.
    palette = [colour(n) for n in range(MAX_ITER + 1)]
    columns = WIDTH // TILE
    rows = []
    for y in range(HEIGHT):
        row = bytearray()
        for c in range(columns):
            counts = results[(y // TILE) * columns + c]["counts"]
            start = (TILE - 1 - y % TILE) * TILE
            row += b"".join(palette[n] for n in counts[start : start + TILE])
        rows.append(bytes(row))
    write_png(options.output, WIDTH, HEIGHT, rows)
    print(
        f"wrote {options.output}: {WIDTH} x {HEIGHT} pixels from {len(tasks)} tiles "
        f"({seconds:.1f} s)"
    )


if __name__ == "__main__":
    main()
