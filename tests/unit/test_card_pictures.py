"""The pure parts of `mlbot cards --png`: job list, renderer answers, PNG checks, setup."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

import app
from sandbox.card_catalog import sample_cards
from sandbox.card_pictures import (
    CHROMIUM_ENV,
    HOST_CONFIG,
    RENDER_SCRIPT,
    CardPicture,
    RenderEvent,
    RenderFailed,
    RenderSetup,
    build_request,
    chromium_path,
    describe,
    find_node_modules,
    inspect_picture,
    parse_result,
    pictures_command,
    read_png,
    render_cards,
    render_setup,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = "regenerate with `mlbot cards --png docs/cards` and show it in docs/cards.md"

Pixel = tuple[int, int, int]
WHITE: Pixel = (255, 255, 255)
INK: Pixel = (36, 36, 36)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filtered(method: int, row: bytes, above: bytes, bpp: int) -> bytes:
    """Apply PNG filter `method` to one scanline, as an encoder would."""
    out = bytearray()
    for x, value in enumerate(row):
        a = row[x - bpp] if x >= bpp else 0
        b = above[x]
        c = above[x - bpp] if x >= bpp else 0
        predictor = [0, a, b, (a + b) // 2, _paeth(a, b, c)][method]
        out.append((value - predictor) & 0xFF)
    return bytes(out)


def encode_png(pixels: list[list[Pixel]], *, alpha: bool = False) -> bytes:
    """A minimal PNG encoder; row k uses filter k % 5, so decoding covers all five."""
    height, width = len(pixels), len(pixels[0])
    bpp = 4 if alpha else 3
    raw, above = bytearray(), bytes(width * bpp)
    for y, row in enumerate(pixels):
        line = bytes(v for px in row for v in ((*px, 255) if alpha else px))
        method = y % 5
        raw += bytes([method]) + _filtered(method, line, above, bpp)
        above = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 6 if alpha else 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


def picture(width: int, height: int, ink_rows: int = 0) -> list[list[Pixel]]:
    """A light picture with a gradient (so filters matter) and `ink_rows` rows of dark text."""
    rows = []
    for y in range(height):
        if y < ink_rows:
            rows.append([INK] * width)
        else:
            rows.append([(200 + (x + y) % 50, 220 + x % 30, 255 - y % 40) for x in range(width)])
    return rows


@pytest.mark.parametrize("alpha", [False, True])
def test_read_png_measures_size_and_ink_through_every_filter(alpha: bool) -> None:
    image = read_png(encode_png(picture(23, 20, ink_rows=5), alpha=alpha))
    assert (image.width, image.height) == (23, 20)
    assert image.ink_pixels == 5 * 23
    assert image.ink == pytest.approx(5 / 20)


def test_read_png_of_a_light_picture_has_no_ink() -> None:
    assert read_png(encode_png(picture(10, 10))).ink == 0


@pytest.mark.parametrize(
    "data, message",
    [
        (b"GIF89a....", "not a PNG"),
        (b"\x89PNG\r\n\x1a\n", "header"),
    ],
)
def test_read_png_refuses_what_is_not_a_png(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_png(data)


def test_read_png_refuses_truncated_image_data() -> None:
    data = encode_png(picture(10, 10))
    idat = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[idat - 4 : idat])
    body = zlib.decompress(data[idat + 4 : idat + 4 + length])
    short = zlib.compress(body[: len(body) // 2])
    broken = (
        data[: idat - 4]
        + struct.pack(">I", len(short))
        + b"IDAT"
        + short
        + b"\0\0\0\0"
        + data[idat + 8 + length :]
    )
    with pytest.raises(ValueError, match="truncated"):
        read_png(broken)


SETUP = RenderSetup(node="/usr/bin/node", chromium=Path("/opt/chromium"), modules=Path("/repo"))


def test_request_lists_every_card_with_a_png_named_like_its_json(tmp_path: Path) -> None:
    cards = {"status": {"type": "AdaptiveCard"}, "help": {"type": "AdaptiveCard"}}
    request = build_request(cards, tmp_path / "out", SETUP, {"spacing": {}})
    assert request["chromium"] == "/opt/chromium"
    assert request["modules"] == "/repo"
    assert request["width"] == SETUP.width
    assert request["host_config"] == {"spacing": {}}
    assert [job["name"] for job in request["cards"]] == ["status", "help"]
    assert [job["card"] for job in request["cards"]] == list(cards.values())
    assert [Path(job["png"]) for job in request["cards"]] == [
        (tmp_path / "out" / "status.png").resolve(),
        (tmp_path / "out" / "help.png").resolve(),
    ]
    json.dumps(request)  # what node reads must be plain JSON


def test_request_without_a_folder_only_checks() -> None:
    request = build_request({"status": {}}, None, SETUP, {})
    assert request["cards"][0]["png"] is None


def test_renderer_answer_becomes_a_picture_with_errors_and_warnings() -> None:
    line = json.dumps(
        {
            "name": "broken",
            "png": "/out/broken.png",
            "events": [
                {
                    "phase": "Parse",
                    "kind": "UnknownElementType",
                    "source": "",
                    "message": 'Unknown element type "Foo".',
                },
                {
                    "phase": "Validation",
                    "kind": "PropertyCantBeNull",
                    "source": "Action.OpenUrl",
                    "message": 'Property "url" must be set.',
                },
                {"phase": "Parse", "kind": "Deprecated", "source": None, "message": "old"},
            ],
            "text": "Broken",
        }
    )
    result = parse_result(line)
    assert result.name == "broken"
    assert result.png == Path("/out/broken.png")
    assert result.text == "Broken"
    assert result.errors == [
        'Parse UnknownElementType: Unknown element type "Foo".',
        'Validation PropertyCantBeNull in Action.OpenUrl: Property "url" must be set.',
    ]
    assert result.warnings == ["Parse Deprecated: old"]
    assert not result.ok
    assert describe(result).startswith("FAIL broken: Parse UnknownElementType")


@pytest.mark.parametrize("line", ["not json", "{}", '{"name": "x", "events": [1]}', "[]"])
def test_garbled_renderer_output_is_reported(line: str) -> None:
    with pytest.raises(RenderFailed, match="unexpected output"):
        parse_result(line)


def test_a_clean_picture_is_ok(tmp_path: Path) -> None:
    png = tmp_path / "status.png"
    png.write_bytes(encode_png(picture(SETUP.width + 18, 80, ink_rows=4)))
    checked = inspect_picture(CardPicture("status", png), SETUP.width)
    assert checked.ok
    assert checked.image is not None and checked.image.height == 80
    assert describe(checked) == f"ok   {png} {SETUP.width + 18}x80"


def test_a_blank_picture_is_an_error(tmp_path: Path) -> None:
    png = tmp_path / "status.png"
    png.write_bytes(encode_png(picture(SETUP.width + 18, 80)))
    checked = inspect_picture(CardPicture("status", png), SETUP.width)
    assert checked.errors == ["picture is blank: the card drew no text"]


def test_a_short_word_is_enough_ink(tmp_path: Path) -> None:
    pixels = picture(SETUP.width + 18, 80)
    pixels[40][100:130] = [INK] * 30
    png = tmp_path / "short.png"
    png.write_bytes(encode_png(pixels))
    assert inspect_picture(CardPicture("short", png), SETUP.width).ok


def test_a_picture_of_the_wrong_width_is_an_error(tmp_path: Path) -> None:
    png = tmp_path / "status.png"
    png.write_bytes(encode_png(picture(100, 80, ink_rows=10)))
    checked = inspect_picture(CardPicture("status", png), SETUP.width)
    assert checked.errors == ["picture has an unexpected size 100x80"]


def test_a_missing_picture_is_an_error(tmp_path: Path) -> None:
    checked = inspect_picture(CardPicture("status", tmp_path / "nope.png"), SETUP.width)
    assert len(checked.errors) == 1
    assert checked.errors[0].startswith(f"unreadable picture {tmp_path / 'nope.png'}")


def test_render_event_text_names_where_it_happened() -> None:
    event = RenderEvent("Validation", "PropertyCantBeNull", "must be set", "Action.OpenUrl")
    assert str(event) == "Validation PropertyCantBeNull in Action.OpenUrl: must be set"
    assert event.is_error
    assert not RenderEvent("Parse", "Hint", "consider a label").is_error


def test_a_teams_chart_drawn_as_its_fallback_is_not_an_error() -> None:
    chart = 'Unknown element type "Chart.VerticalBar". Fallback will be used if present.'
    drawn_as_fallback = RenderEvent("Parse", "UnknownElementType", chart)
    assert not drawn_as_fallback.is_error
    assert CardPicture("c", None, events=(drawn_as_fallback,)).warnings == []
    other = 'Unknown element type "Media.Fancy". Fallback will be used if present.'
    assert RenderEvent("Parse", "UnknownElementType", other).is_error


def test_node_modules_are_found_above_the_start(tmp_path: Path) -> None:
    for package in ("adaptivecards", "playwright-core"):
        (tmp_path / "node_modules" / package).mkdir(parents=True)
    deep = tmp_path / "cards" / "render"
    deep.mkdir(parents=True)
    assert find_node_modules([deep]) == tmp_path


def test_node_modules_need_both_packages(tmp_path: Path) -> None:
    (tmp_path / "node_modules" / "adaptivecards").mkdir(parents=True)
    assert find_node_modules([tmp_path]) is None


def test_missing_chromium_is_named_with_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "no-chromium"
    with pytest.raises(RenderFailed, match=f"Chromium not found at {missing}.*{CHROMIUM_ENV}"):
        render_setup({CHROMIUM_ENV: str(missing)}, tmp_path)


def test_chromium_is_debians_unless_the_setting_says_otherwise() -> None:
    assert chromium_path({}) == Path("/usr/bin/chromium")
    assert chromium_path({CHROMIUM_ENV: ""}) == Path("/usr/bin/chromium")
    assert chromium_path({CHROMIUM_ENV: "/opt/chrome/chrome"}) == Path("/opt/chrome/chrome")


def test_command_without_chromium_fails_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = pictures_command(
        tmp_path / "png", {"status": {}}, {CHROMIUM_ENV: str(tmp_path / "none")}
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "Chromium not found" in err
    assert not (tmp_path / "png").exists()


def test_renderer_files_ship_with_the_package() -> None:
    assert RENDER_SCRIPT.is_file()
    assert (RENDER_SCRIPT.parent / "page.html").is_file()


def test_host_config_uses_teams_light_colours() -> None:
    config = json.loads(HOST_CONFIG.read_text("utf-8"))
    default = config["containerStyles"]["default"]
    assert default["backgroundColor"] == "#FFFFFF"
    colours = default["foregroundColors"]
    assert colours["default"] == {"default": "#242424", "subtle": "#616161"}
    assert colours["accent"]["default"] == "#6264A7"
    assert {"good", "warning", "attention"} <= colours.keys()
    assert {"emphasis", "accent", "good", "attention", "warning"} <= config[
        "containerStyles"
    ].keys()
    assert "Segoe UI" in config["fontTypes"]["default"]["fontFamily"]
    assert config["supportsInteractivity"] is True


def test_docs_show_a_picture_of_every_card() -> None:
    names = list(sample_cards())
    page = (DOCS / "cards.md").read_text("utf-8")
    unshown = [name for name in names if f"](cards/{name}.png)" not in page]
    assert not unshown, f"cards missing from docs/cards.md ({REGENERATE}): {unshown}"
    pictures = {path.stem: path for path in (DOCS / "cards").glob("*.png")}
    missing = sorted(set(names) - set(pictures))
    assert not missing, f"cards without a picture in docs/cards/ ({REGENERATE}): {missing}"
    stale = sorted(set(pictures) - set(names))
    assert not stale, f"pictures in docs/cards/ of cards that no longer exist: {stale}"


def test_docs_pictures_are_pngs_the_size_of_a_message() -> None:
    total = 0
    for path in (DOCS / "cards").glob("*.png"):
        data = path.read_bytes()
        total += len(data)
        assert data[:8] == b"\x89PNG\r\n\x1a\n", path.name
        width, height = struct.unpack(">II", data[16:24])
        assert SETUP.width < width <= SETUP.width + 40, path.name
        assert 64 <= height <= 4000, path.name
    # They live in git: keep the whole set small.
    assert total < 3 * 1024 * 1024


def test_cards_command_alone_still_writes_json_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert app.main(["cards"]) == 0
    written = sorted(p.name for p in (tmp_path / "cards-out").iterdir())
    assert written == sorted(f"{name}.json" for name in sample_cards())
    assert "rendered" not in capsys.readouterr().out


def fake_node(tmp_path: Path, script: str) -> RenderSetup:
    """A stand-in for node that reads the job list and answers as `script` says."""
    path = tmp_path / "fake-node"
    path.write_text(f"#!/bin/sh\ncat > {tmp_path / 'request.json'}\n{script}\n")
    path.chmod(0o755)
    return RenderSetup(node=str(path), chromium=Path("/opt/chromium"), modules=tmp_path)


def test_renderer_gets_the_job_list_and_its_answers_are_read(tmp_path: Path) -> None:
    answer = json.dumps({"name": "status", "png": None, "events": [], "text": "Status"})
    setup = fake_node(tmp_path, f"echo '{answer}'")
    seen: list[str] = []
    pictures = render_cards(
        {"status": {"type": "AdaptiveCard"}}, None, setup, on_picture=lambda p: seen.append(p.name)
    )
    assert [(p.name, p.text, p.ok) for p in pictures] == [("status", "Status", True)]
    assert seen == ["status"]
    request = json.loads((tmp_path / "request.json").read_text("utf-8"))
    assert request["cards"] == [{"name": "status", "card": {"type": "AdaptiveCard"}, "png": None}]
    assert request["host_config"]["containerStyles"]["default"]["backgroundColor"] == "#FFFFFF"


def test_a_renderer_that_cannot_start_says_why(tmp_path: Path) -> None:
    setup = fake_node(tmp_path, "echo 'cannot start Chromium at /opt/chromium: gone' >&2; exit 2")
    with pytest.raises(RenderFailed, match="cannot start Chromium at /opt/chromium: gone"):
        render_cards({"status": {}}, None, setup)


def test_a_renderer_that_skips_a_card_is_a_failure(tmp_path: Path) -> None:
    answer = json.dumps({"name": "status", "png": None, "events": []})
    setup = fake_node(tmp_path, f"echo '{answer}'")
    with pytest.raises(RenderFailed, match="no answer for help"):
        render_cards({"status": {}, "help": {}}, None, setup)


def test_garbage_from_the_renderer_stops_it(tmp_path: Path) -> None:
    # Endless output after the garbage: the run must still end, with the renderer stopped.
    setup = fake_node(tmp_path, "echo 'Segmentation fault'; yes '{}'")
    with pytest.raises(RenderFailed, match="unexpected output from the renderer"):
        render_cards({"status": {}}, None, setup)
