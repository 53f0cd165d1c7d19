"""Every card through the official Adaptive Cards renderer in headless Chromium.

The cards are parsed at their own version by the `adaptivecards` npm package, checked with
its validator, and drawn in Teams' light theme; the PNGs are read back and must be real
pictures of the card. `make pytest` installs Node packages and Chromium, so a missing piece
fails here with what to install rather than skipping.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

import app
from sandbox.card_catalog import sample_cards
from sandbox.card_pictures import (
    RenderFailed,
    RenderSetup,
    pictures_command,
    read_png,
    render_cards,
    render_setup,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CARDS = sample_cards()


@pytest.fixture(scope="module")
def setup() -> RenderSetup:
    try:
        return render_setup(os.environ, Path.cwd())
    except RenderFailed as exc:
        pytest.fail(f"card pictures cannot be drawn: {exc}", pytrace=False)


@dataclass(frozen=True)
class Run:
    """One `mlbot cards --out J --png P` over the whole catalog, as a user runs it."""

    status: int
    json_dir: Path
    png_dir: Path
    lines: list[str]

    def line_of(self, name: str) -> str:
        for line in self.lines[:-1]:
            verdict, target = line.split()[:2]
            key = Path(target).stem if verdict == "ok" else target.rstrip(":")
            if key == name:
                return line
        raise AssertionError(f"no progress line for {name} in:\n" + "\n".join(self.lines))


@pytest.fixture(scope="module")
def run(setup: RenderSetup, tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("cards")
    json_dir, png_dir = folder / "json", folder / "png"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = app.main(["cards", "--out", str(json_dir), "--png", str(png_dir)])
    # The picture lines; the JSON part lists its files first.
    lines = [
        line
        for line in printed.getvalue().splitlines()
        if line.startswith(("ok ", "FAIL ", "rendered "))
    ]
    return Run(status, json_dir, png_dir, lines)


def png_header(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_command_renders_every_card_and_sums_up(run: Run) -> None:
    assert run.status == 0, "\n".join(line for line in run.lines if line.startswith("FAIL"))
    assert len(run.lines) == len(CARDS) + 1
    assert run.lines[-1].startswith(f"rendered {len(CARDS)} cards to {run.png_dir} (")
    assert run.lines[-1].endswith(f"{len(CARDS)} ok, 0 with errors")
    json_names = sorted(p.stem for p in run.json_dir.glob("*.json"))
    png_names = sorted(p.stem for p in run.png_dir.glob("*.png"))
    assert json_names == png_names == sorted(CARDS)


@pytest.mark.parametrize("name", list(CARDS))
def test_card_parses_in_the_official_renderer_without_errors(run: Run, name: str) -> None:
    line = run.line_of(name)
    assert line.startswith("ok "), line
    assert "(" not in line, f"renderer warnings: {line}"


@pytest.mark.parametrize("name", list(CARDS))
def test_card_picture_is_a_png_of_the_card(run: Run, name: str, setup: RenderSetup) -> None:
    path = run.png_dir / f"{name}.png"
    width, height = png_header(path)
    # The card's width plus the thin frame; tall enough for a heading and a line.
    assert setup.width < width <= setup.width + 40
    assert 80 <= height <= 4000
    assert run.line_of(name) == f"ok   {path} {width}x{height}"


def test_pictures_show_text_and_differ_between_cards(run: Run) -> None:
    # Decoding is pure Python: a sample of cards of every family keeps this quick.
    names = ["status", "approvals", "event-training-failed", "webhook-deployment-completed"]
    images = {name: read_png((run.png_dir / f"{name}.png").read_bytes()) for name in names}
    for name, image in images.items():
        assert image.ink > 0.01, f"{name} looks blank"
    digests = {(run.png_dir / f"{name}.png").read_bytes() for name in names}
    assert len(digests) == len(names)


def test_markdown_is_applied_as_teams_does(setup: RenderSetup) -> None:
    names = ["event-training-failed-retries-exhausted", "retry-confirmation", "status"]
    shown = {p.name: p.text for p in render_cards({n: CARDS[n] for n in names}, None, setup)}
    failed = shown["event-training-failed-retries-exhausted"]
    assert "Retries exhausted: no automatic retry follows." in failed
    assert "**" not in failed
    # Escaped underscores show as underscores, not as italics or backslashes.
    assert "tidy_owl_z81c" in failed
    assert "\\" not in failed
    retry = shown["retry-confirmation"]
    assert "This queues training-pipeline once" in retry
    assert "PLANT002/CIRCUIT02\nPLANT002/CIRCUIT04" in retry  # a bulleted list
    assert "[" not in shown["status"] and "](" not in shown["status"]  # links became anchors


def test_markdown_subset_edges(setup: RenderSetup) -> None:
    text = (
        "line one\nline two\n\nnext _paragraph_ for MLBOT_APPROVERS_PROD\n\n"
        "<b>not html</b> and `not code` and [a link](https://example.org/x_y)"
    )
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": text}]}
    (picture,) = render_cards({"markdown": card}, None, setup)
    assert picture.ok, picture.errors
    assert picture.text.split("\n") == [
        "line one line two",
        "next paragraph for MLBOT_APPROVERS_PROD",
        "<b>not html</b> and `not code` and a link",
    ]


def test_broken_cards_are_reported_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cards = {
        "status": CARDS["status"],
        "broken-unknown-element": {
            "type": "AdaptiveCard",
            "version": "1.5",
            "body": [{"type": "TextBlock", "text": "x"}, {"type": "Gauge", "value": 3}],
        },
        "broken-link-without-url": {
            "type": "AdaptiveCard",
            "version": "1.5",
            "body": [{"type": "TextBlock", "text": "x"}],
            "actions": [{"type": "Action.OpenUrl", "title": "Open"}],
        },
        "broken-too-new-for-1.4": {
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [{"type": "Table", "columns": [{"width": 1}], "rows": []}],
        },
    }
    status = pictures_command(tmp_path, cards)
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    by_name = {line.split()[1].rstrip(":"): line for line in lines[:-1]}
    assert by_name[str(tmp_path / "status.png")].startswith("ok")
    assert by_name["broken-unknown-element"].startswith("FAIL")
    assert 'UnknownElementType: Unknown element type "Gauge"' in by_name["broken-unknown-element"]
    assert "PropertyCantBeNull in Action.OpenUrl" in by_name["broken-link-without-url"]
    assert by_name["broken-too-new-for-1.4"].startswith("FAIL")
    assert (
        lines[-1] == f"rendered 4 cards to {tmp_path} ({_kib(tmp_path)} KiB): 1 ok, 3 with errors"
    )


def _kib(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.png")) // 1024
