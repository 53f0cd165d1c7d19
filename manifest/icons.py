"""The app's two Teams icons, and just enough PNG to write and check them without Pillow.

Teams shows the color icon (192x192, full-bleed background) in the app store and the app
bar, and the outline icon (32x32, white on transparent) in the activity feed and compose
box, where it is tinted by the theme: any other color in it looks broken in dark mode.
The icons are drawn here deterministically, so a rebuild gives byte-identical files;
`python -m manifest.icons` rewrites `manifest/color.png` and `manifest/outline.png`.
A designer may replace those files with real art: the package builder and validator
only need them to be PNGs of the right size and colors.
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

COLOR_SIZE = 192
OUTLINE_SIZE = 32
# The manifest's accentColor: the color icon's background, so both read as one brand.
ACCENT_COLOR = "#0F6CBD"

ICON_DIR = Path(__file__).resolve().parent
COLOR_ICON = ICON_DIR / "color.png"
OUTLINE_ICON = ICON_DIR / "outline.png"

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SUBSAMPLES = 4  # 4x4 samples per pixel: smooth edges, still exact and repeatable

Shape = Callable[[float, float], bool]


class PngError(ValueError):
    """The bytes are not a PNG this module can read (the message says why)."""


@dataclass(frozen=True, slots=True)
class Image:
    """Straight (not premultiplied) 8-bit RGBA pixels, row by row."""

    width: int
    height: int
    rgba: bytes

    def pixel(self, x: int, y: int) -> tuple[int, int, int, int]:
        at = (y * self.width + x) * 4
        r, g, b, a = self.rgba[at : at + 4]
        return r, g, b, a


# --- writing ----------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_png(image: Image) -> bytes:
    """An RGBA PNG with no timestamps or text chunks, so equal pixels give equal bytes."""
    if len(image.rgba) != image.width * image.height * 4:
        raise ValueError("pixel data does not match the image size")
    stride = image.width * 4
    # Filter type 0 (None) on every row: simple and deterministic; icons are tiny anyway.
    raw = b"".join(
        b"\x00" + image.rgba[row * stride : (row + 1) * stride] for row in range(image.height)
    )
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, 6, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


# --- reading ------------------------------------------------------------------------------

# Channels per pixel for 8-bit color types: gray, RGB, palette, gray+alpha, RGBA.
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, for any valid PNG."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise PngError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> bytes:
    out = bytearray()
    previous = bytearray(stride)
    pos = 0
    for _ in range(height):
        if pos + 1 + stride > len(raw):
            raise PngError("image data is truncated")
        kind = raw[pos]
        line = bytearray(raw[pos + 1 : pos + 1 + stride])
        pos += 1 + stride
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            upper_left = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + _paeth(left, up, upper_left)) & 0xFF
            elif kind != 0:
                raise PngError(f"unknown row filter {kind}")
        out += line
        previous = line
    return bytes(out)


def decode_png(data: bytes) -> Image:
    """Decode an 8-bit, non-interlaced PNG (the formats icon editors export) to RGBA."""
    if not data.startswith(PNG_SIGNATURE):
        raise PngError("not a PNG file")
    pos = len(PNG_SIGNATURE)
    header: tuple[int, ...] | None = None
    palette = b""
    transparency = b""
    idat = bytearray()
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise PngError("file is truncated")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise PngError(f"bad checksum in {kind.decode('latin-1')} chunk")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = body
        elif kind == b"tRNS":
            transparency = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if header is None:
        raise PngError("no IHDR chunk")
    width, height, depth, color_type, _, _, interlace = header
    if depth != 8 or color_type not in _CHANNELS or interlace != 0:
        raise PngError(
            f"unsupported PNG format (bit depth {depth}, color type {color_type}, "
            f"interlace {interlace}); export it as 8-bit RGBA"
        )
    channels = _CHANNELS[color_type]
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error as exc:
        raise PngError(f"image data is corrupt ({exc})") from None
    pixels = _unfilter(raw, height, width * channels, channels)
    return Image(width, height, _to_rgba(pixels, color_type, palette, transparency))


def _to_rgba(pixels: bytes, color_type: int, palette: bytes, transparency: bytes) -> bytes:
    if color_type == 6:
        return pixels
    out = bytearray()
    if color_type == 2:
        for i in range(0, len(pixels), 3):
            out += pixels[i : i + 3] + b"\xff"
    elif color_type == 0:
        for gray in pixels:
            out += bytes((gray, gray, gray, 255))
    elif color_type == 4:
        for i in range(0, len(pixels), 2):
            gray, alpha = pixels[i], pixels[i + 1]
            out += bytes((gray, gray, gray, alpha))
    else:  # palette
        for index in pixels:
            if 3 * index + 3 > len(palette):
                raise PngError("palette index out of range")
            alpha = transparency[index] if index < len(transparency) else 255
            out += palette[3 * index : 3 * index + 3] + bytes((alpha,))
    return bytes(out)


# --- drawing ------------------------------------------------------------------------------


def _rounded_rect(x0: float, y0: float, x1: float, y1: float, radius: float) -> Shape:
    def inside(x: float, y: float) -> bool:
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            return False
        cx = min(max(x, x0 + radius), x1 - radius)
        cy = min(max(y, y0 + radius), y1 - radius)
        return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2

    return inside


def _circle(cx: float, cy: float, radius: float) -> Shape:
    return lambda x, y: (x - cx) ** 2 + (y - cy) ** 2 <= radius**2


def _glyph(margin: float) -> Shape:
    """Rising bars with a dot on the tallest: training runs, getting better.

    Coordinates are fractions of the icon; `margin` is the empty border on each side.
    """
    span = 1 - 2 * margin

    def at(value: float) -> float:
        return margin + value * span

    bar = 0.22
    gap = (1 - 3 * bar) / 2
    bottom = at(1.0)
    shapes: list[Shape] = []
    for index, height in enumerate((0.38, 0.62, 0.78)):
        left = at(index * (bar + gap))
        shapes.append(
            _rounded_rect(left, bottom - height * span, left + bar * span, bottom, 0.05 * span)
        )
    # The dot sits above the tallest bar, like a fresh best score.
    shapes.append(_circle(at(1 - bar / 2), at(0.08), 0.085 * span))
    return lambda x, y: any(shape(x, y) for shape in shapes)


def _coverage(shape: Shape, size: int) -> list[int]:
    """0-255 coverage per pixel, from a fixed grid of samples (no randomness)."""
    steps = _SUBSAMPLES
    total = steps * steps
    values = []
    for py in range(size):
        for px in range(size):
            hits = sum(
                shape((px + (sx + 0.5) / steps) / size, (py + (sy + 0.5) / steps) / size)
                for sy in range(steps)
                for sx in range(steps)
            )
            values.append((hits * 255 + total // 2) // total)
    return values


def _hex_rgb(color: str) -> tuple[int, int, int]:
    value = color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def draw_color_icon(size: int = COLOR_SIZE, accent: str = ACCENT_COLOR) -> Image:
    """White glyph on the accent color, edge to edge (Teams rounds the corners itself)."""
    red, green, blue = _hex_rgb(accent)
    out = bytearray()
    for cover in _coverage(_glyph(margin=0.25), size):
        mix = cover / 255
        out += bytes(
            (
                round(red + (255 - red) * mix),
                round(green + (255 - green) * mix),
                round(blue + (255 - blue) * mix),
                255,
            )
        )
    return Image(size, size, bytes(out))


def draw_outline_icon(size: int = OUTLINE_SIZE) -> Image:
    """The same glyph in white on transparent; only the alpha channel varies."""
    out = bytearray()
    for cover in _coverage(_glyph(margin=0.12), size):
        out += bytes((255, 255, 255, cover))
    return Image(size, size, bytes(out))


def write_icons(folder: Path = ICON_DIR) -> list[Path]:
    """Draw both icons into `folder` as color.png and outline.png."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, image in (("color.png", draw_color_icon()), ("outline.png", draw_outline_icon())):
        path = folder / name
        path.write_bytes(encode_png(image))
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_icons(Path(sys.argv[1]) if len(sys.argv) > 1 else ICON_DIR):
        print(f"wrote {written_path}")
