"""Pictures of the cards, drawn by the official Adaptive Cards renderer in Teams' light theme.

`mlbot cards --png DIR` hands every sample card to `cards/render/render.mjs`, which loads
the `adaptivecards` npm package into headless Chromium (driven by `playwright-core`), parses
each card at its own version, collects the renderer's parse and validation events, and
screenshots the rendered card. One browser session draws them all.

This module builds the job list, runs node, reads its answers back as `CardPicture`s and
checks the PNGs it wrote (size, and that something was drawn). The node packages come from
the project's `node_modules` (`npm ci`); Chromium is Debian's (`MLBOT_CHROMIUM` points
elsewhere).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cards.common import CHART_TYPES, Card
from sandbox.card_catalog import sample_cards

__all__ = [
    "CHROMIUM_ENV",
    "DEFAULT_CHROMIUM",
    "CardPicture",
    "PngImage",
    "RenderEvent",
    "RenderFailed",
    "RenderSetup",
    "build_request",
    "chromium_path",
    "find_node_modules",
    "parse_result",
    "pictures_command",
    "read_png",
    "render_cards",
    "render_setup",
]

CHROMIUM_ENV = "MLBOT_CHROMIUM"
DEFAULT_CHROMIUM = Path("/usr/bin/chromium")
# About the width of a card in a Teams message column.
CARD_WIDTH = 440
RENDER_DIR = Path(__file__).resolve().parents[1] / "cards" / "render"
RENDER_SCRIPT = RENDER_DIR / "render.mjs"
HOST_CONFIG = RENDER_DIR / "host_config.json"
# Advice from the renderer, not a defect of the card: reported, but the run still passes.
WARNING_KINDS = frozenset({"Hint", "Deprecated"})
# Text-dark pixels a picture needs to count as drawn: an empty frame has none, a short
# word has dozens, and a real card thousands.
MIN_INK_PIXELS = 20
MIN_SIDE, MAX_SIDE = 64, 4000


def _names_a_chart(message: str) -> bool:
    return any(f'"{kind}"' in message for kind in CHART_TYPES)


class RenderFailed(RuntimeError):
    """The run as a whole could not happen: no node, no Chromium, no npm packages, a crash."""


@dataclass(frozen=True)
class RenderEvent:
    """One parse or validation event the official renderer raised for a card."""

    phase: str
    kind: str
    message: str
    source: str = ""

    @property
    def expected(self) -> bool:
        """Teams' charts are unknown to the official renderer, which draws their fallback
        as Teams on iOS does (every chart has one: tests/card_charts.py): not reported."""
        return self.kind == "UnknownElementType" and _names_a_chart(self.message)

    @property
    def is_error(self) -> bool:
        return not self.expected and self.kind not in WARNING_KINDS

    def __str__(self) -> str:
        where = f" in {self.source}" if self.source else ""
        return f"{self.phase} {self.kind}{where}: {self.message}"


@dataclass(frozen=True)
class PngImage:
    width: int
    height: int
    # Pixels dark enough to be text, headings or icons on a light card.
    ink_pixels: int

    @property
    def ink(self) -> float:
        """The share of the picture that is ink."""
        return self.ink_pixels / max(1, self.width * self.height)


@dataclass(frozen=True)
class CardPicture:
    """What became of one card: the renderer's events, the PNG and what it shows."""

    name: str
    png: Path | None
    events: tuple[RenderEvent, ...] = ()
    image: PngImage | None = None
    problems: tuple[str, ...] = field(default=())
    # The text the rendered card shows (markdown applied), for checks and searches.
    text: str = ""

    @property
    def errors(self) -> list[str]:
        return [str(e) for e in self.events if e.is_error] + list(self.problems)

    @property
    def warnings(self) -> list[str]:
        return [str(e) for e in self.events if not e.is_error and not e.expected]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class RenderSetup:
    node: str
    chromium: Path
    # The folder holding `node_modules/` with adaptivecards and playwright-core.
    modules: Path
    width: int = CARD_WIDTH


def find_node_modules(starts: Iterable[Path]) -> Path | None:
    """The nearest folder at or above one of `starts` whose node_modules has both packages."""
    for start in starts:
        for folder in (start, *start.parents):
            modules = folder / "node_modules"
            if (modules / "adaptivecards").is_dir() and (modules / "playwright-core").is_dir():
                return folder
    return None


def chromium_path(environ: Mapping[str, str]) -> Path:
    return Path(environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM)


def render_setup(environ: Mapping[str, str], cwd: Path) -> RenderSetup:
    """Locate node, Chromium and the npm packages, or say exactly what is missing."""
    node = shutil.which("node")
    if node is None:
        raise RenderFailed("node is not installed: card pictures need Node.js 18 or newer")
    chromium = chromium_path(environ)
    if not chromium.is_file():
        raise RenderFailed(
            f"Chromium not found at {chromium}: install Debian's chromium package "
            f"(make pytest does) or set {CHROMIUM_ENV} to a Chromium binary"
        )
    # The repository's own node_modules first (the package lives in the tree), then cwd's.
    modules = find_node_modules([Path(__file__).resolve().parent, cwd.resolve()])
    if modules is None:
        raise RenderFailed(
            "the npm packages adaptivecards and playwright-core are missing: "
            "run `npm ci` in the project (make node_modules/.installed)"
        )
    return RenderSetup(node=node, chromium=chromium, modules=modules)


def png_path(out_dir: Path, name: str) -> Path:
    # Same base name as the JSON `mlbot cards --out` writes.
    return out_dir / f"{name}.png"


def build_request(
    cards: Mapping[str, Card],
    out_dir: Path | None,
    setup: RenderSetup,
    host_config: Mapping[str, Any],
) -> dict[str, Any]:
    """The job list render.mjs reads: every card, and where its PNG goes (None: check only)."""
    return {
        "chromium": str(setup.chromium),
        "modules": str(setup.modules),
        "width": setup.width,
        "host_config": dict(host_config),
        "cards": [
            {
                "name": name,
                "card": card,
                "png": str(png_path(out_dir, name).resolve()) if out_dir is not None else None,
            }
            for name, card in cards.items()
        ],
    }


def parse_result(line: str) -> CardPicture:
    """One line of render.mjs output as a `CardPicture` (PNG not inspected yet)."""
    try:
        raw = json.loads(line)
        events = tuple(
            RenderEvent(
                phase=str(e.get("phase", "")),
                kind=str(e.get("kind", "")),
                message=str(e.get("message", "")),
                source=str(e.get("source") or ""),
            )
            for e in raw.get("events", [])
        )
        png = raw.get("png")
        return CardPicture(
            name=str(raw["name"]),
            png=Path(png) if png else None,
            events=events,
            text=str(raw.get("text") or ""),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RenderFailed(f"unexpected output from the renderer: {line[:200]!r}") from exc


def _png_rows(data: bytes) -> tuple[int, int, int, list[bytearray]]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, idat = 8, []
    header: tuple[int, ...] | None = None
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without a header chunk")
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG layout (depth {depth}, colour type {colour})")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    if len(raw) < height * (stride + 1):
        raise ValueError("PNG image data is truncated")
    rows: list[bytearray] = []
    previous, at = bytearray(stride), 0
    for _ in range(height):
        method, line = raw[at], bytearray(raw[at + 1 : at + 1 + stride])
        at += 1 + stride
        _unfilter(method, line, previous, channels)
        rows.append(line)
        previous = line
    return width, height, channels, rows


def _unfilter(kind: int, line: bytearray, above: bytearray, bpp: int) -> None:
    # The five PNG scanline filters (RFC 2083 §6), undone in place.
    if kind == 1:
        for x in range(bpp, len(line)):
            line[x] = (line[x] + line[x - bpp]) & 0xFF
    elif kind == 2:
        for x in range(len(line)):
            line[x] = (line[x] + above[x]) & 0xFF
    elif kind == 3:
        for x in range(len(line)):
            left = line[x - bpp] if x >= bpp else 0
            line[x] = (line[x] + ((left + above[x]) >> 1)) & 0xFF
    elif kind == 4:
        for x in range(len(line)):
            a = line[x - bpp] if x >= bpp else 0
            b = above[x]
            c = above[x - bpp] if x >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    elif kind != 0:
        raise ValueError(f"unknown PNG filter {kind}")


def read_png(data: bytes) -> PngImage:
    """Size and ink of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    width, height, channels, rows = _png_rows(data)
    dark = 0
    for row in rows:
        if channels >= 3:
            for x in range(0, len(row), channels):
                # Integer luma (ITU-R BT.601); below 96 is text-dark on a light card.
                if row[x] * 299 + row[x + 1] * 587 + row[x + 2] * 114 < 96_000:
                    dark += 1
        else:
            dark += sum(1 for x in range(0, len(row), channels) if row[x] < 96)
    return PngImage(width, height, dark)


def inspect_picture(picture: CardPicture, width: int) -> CardPicture:
    """Attach what the PNG shows, and a problem if it is missing, oddly sized or empty."""
    if picture.png is None:
        return picture
    try:
        image = read_png(picture.png.read_bytes())
    except (OSError, ValueError, zlib.error) as exc:
        return _with_problem(picture, f"unreadable picture {picture.png}: {exc}")
    problems = []
    if not (width <= image.width <= width + MIN_SIDE and MIN_SIDE <= image.height <= MAX_SIDE):
        problems.append(f"picture has an unexpected size {image.width}x{image.height}")
    if image.ink_pixels < MIN_INK_PIXELS:
        problems.append("picture is blank: the card drew no text")
    return replace(picture, image=image, problems=picture.problems + tuple(problems))


def _with_problem(picture: CardPicture, problem: str) -> CardPicture:
    return replace(picture, problems=(*picture.problems, problem))


def render_cards(
    cards: Mapping[str, Card],
    out_dir: Path | None,
    setup: RenderSetup,
    *,
    on_picture: Callable[[CardPicture], None] | None = None,
) -> list[CardPicture]:
    """Parse, check and (with `out_dir`) draw every card in one Chromium session."""
    host_config = json.loads(HOST_CONFIG.read_text("utf-8"))
    request = build_request(cards, out_dir, setup, host_config)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    pictures: list[CardPicture] = []
    # Node's complaints go to a file: a pipe nobody reads could fill up and stall it.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        # The node script is part of this package and its input is our own JSON: no shell.
        process = subprocess.Popen(  # noqa: S603
            [setup.node, str(RENDER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            encoding="utf-8",
            cwd=setup.modules,
        )
        try:
            assert process.stdin is not None and process.stdout is not None
            # A renderer that died at once shows in its exit status and stderr below.
            with contextlib.suppress(BrokenPipeError):
                process.stdin.write(json.dumps(request, ensure_ascii=False))
                process.stdin.close()
            for line in process.stdout:
                if not line.strip():
                    continue
                picture = parse_result(line)
                if out_dir is not None:
                    # Named as the caller named the folder (node was given absolute paths).
                    picture = replace(picture, png=png_path(out_dir, picture.name))
                picture = inspect_picture(picture, setup.width)
                pictures.append(picture)
                if on_picture is not None:
                    on_picture(picture)
            status = process.wait()
        finally:
            # Whatever went wrong here, don't leave node and its Chromium behind.
            if process.poll() is None:
                # SIGTERM first: Playwright then closes the browser it started.
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()
        errors.seek(0)
        stderr = errors.read()
    if status != 0:
        raise RenderFailed(stderr.strip() or f"the renderer exited with status {status}")
    missing = [name for name in cards if name not in {p.name for p in pictures}]
    if missing:
        raise RenderFailed(f"the renderer gave no answer for {', '.join(missing)}")
    return pictures


def describe(picture: CardPicture) -> str:
    """One progress line: name, size and verdict."""
    size = f" {picture.image.width}x{picture.image.height}" if picture.image else ""
    if picture.errors:
        return f"FAIL {picture.name}{size}: " + "; ".join(picture.errors)
    notes = f" ({'; '.join(picture.warnings)})" if picture.warnings else ""
    target = picture.png if picture.png is not None else picture.name
    return f"ok   {target}{size}{notes}"


def pictures_command(
    out: Path,
    cards: Mapping[str, Card] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """`mlbot cards --png DIR`: one PNG per sample card; non-zero if any card is rejected."""
    cards = sample_cards() if cards is None else cards
    try:
        setup = render_setup(os.environ if environ is None else environ, Path.cwd())
        pictures = render_cards(
            cards, out, setup, on_picture=lambda picture: print(describe(picture), flush=True)
        )
    except RenderFailed as exc:
        print(f"mlbot cards: {exc}", file=sys.stderr, flush=True)
        return 2
    failed = [p for p in pictures if not p.ok]
    total = sum(p.png.stat().st_size for p in pictures if p.png is not None and p.png.exists())
    print(
        f"rendered {len(pictures)} cards to {out} ({total // 1024} KiB): "
        f"{len(pictures) - len(failed)} ok, {len(failed)} with errors",
        flush=True,
    )
    return 1 if failed else 0
