"""The Teams app package: manifest values, zip layout, icons, the official schema, commands."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from bot.command_catalog import COMMANDS as CATALOG
from bot.command_catalog import Scope
from config.settings import settings_from_mapping
from manifest.icons import (
    COLOR_ICON,
    COLOR_SIZE,
    OUTLINE_ICON,
    OUTLINE_SIZE,
    PNG_SIGNATURE,
    Image,
    PngError,
    decode_png,
    draw_color_icon,
    draw_outline_icon,
    encode_png,
    png_size,
)
from manifest.package import (
    BOT_SCOPES,
    MANIFEST_VERSION,
    BotCommand,
    Developer,
    ManifestValues,
    build_manifest,
    build_package,
    find_manifest_schema,
    manifest_command,
    registered_commands,
    schema_problems,
    validate_package,
)

BOT_ID = "8a1f2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b"
APP_ID = "0f9e8d7c-6b5a-4f3e-9d2c-1b0a9f8e7d6c"
NPM_HINT = (
    "official Teams manifest schema not installed: run `npm ci` at the repository root "
    "(package.json pins @microsoft/app-manifest 1.1.x)"
)


def values(**overrides: Any) -> ManifestValues:
    fields: dict[str, Any] = {"bot_id": BOT_ID, "version": "1.4.2"}
    fields.update(overrides)
    return ManifestValues(**fields)


COMMANDS = (BotCommand("status", "Every watched training job."), BotCommand("help", "Help."))


def require_schema() -> Path:
    path = find_manifest_schema(MANIFEST_VERSION)
    if path is None:
        pytest.skip(NPM_HINT)
    pytest.importorskip("jsonschema", reason="jsonschema is not installed (dev extras)")
    return path


def rewrite(package: Path, out: Path, **replace: bytes | None) -> Path:
    """A copy of `package` with some entries replaced (bytes), dropped (None) or added."""
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            if name in replace:
                continue
            target.writestr(name, source.read(name))
        for name, data in replace.items():
            if data is not None:
                target.writestr(name, data)
    return out


def manifest_of(package: Path) -> dict[str, Any]:
    with zipfile.ZipFile(package) as archive:
        loaded: dict[str, Any] = json.loads(archive.read("manifest.json"))
    return loaded


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return build_package(tmp_path / "mlbot.zip", values(valid_domains=("mlbot.contoso.com",)))


# --- the manifest ---------------------------------------------------------------------------


def test_manifest_carries_the_installation_values() -> None:
    manifest = build_manifest(
        values(
            app_id=APP_ID,
            name="ML Ops",
            short_description="Training alerts.",
            developer=Developer(
                "Contoso ML",
                "https://contoso.com",
                "https://contoso.com/p",
                "https://contoso.com/t",
            ),
            valid_domains=("mlbot.contoso.com", "*.contoso.net", "mlbot.contoso.com"),
        ),
        COMMANDS,
    )
    assert manifest["manifestVersion"] == MANIFEST_VERSION
    assert manifest["$schema"].endswith(f"/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json")
    assert manifest["id"] == APP_ID
    assert manifest["bots"][0]["botId"] == BOT_ID
    assert manifest["version"] == "1.4.2"
    assert manifest["name"] == {
        "short": "ML Ops",
        "full": "ML Ops — ML training and deployment ChatOps",
    }
    assert manifest["description"]["short"] == "Training alerts."
    assert manifest["description"]["full"]  # the template's text is kept
    assert manifest["developer"]["name"] == "Contoso ML"
    assert manifest["validDomains"] == ["mlbot.contoso.com", "*.contoso.net"]
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}


def test_app_id_defaults_to_the_bot_id_and_version_to_mlbot_version() -> None:
    manifest = build_manifest(ManifestValues(bot_id=BOT_ID), COMMANDS)
    assert manifest["id"] == BOT_ID
    assert manifest["version"].count(".") == 2


def test_values_come_from_settings() -> None:
    settings = settings_from_mapping({"MicrosoftAppId": BOT_ID, "MLBOT_BOT_NAME": "trainbot"})
    found = ManifestValues.from_settings(settings, version="2.0.0")
    assert (found.bot_id, found.name, found.version) == (BOT_ID, "trainbot", "2.0.0")


def test_bot_is_offered_in_team_group_chat_and_personal_scopes() -> None:
    bot = build_manifest(values(), COMMANDS)["bots"][0]
    assert set(bot["scopes"]) == {"team", "groupChat", "personal"}
    assert bot["isNotificationOnly"] is False
    # One command list per scope, as Teams asks.
    assert [entry["scopes"] for entry in bot["commandLists"]] == [[s] for s in BOT_SCOPES]


def test_command_lists_cover_every_registered_command() -> None:
    """The compose box menu is the bot's command catalog: same names, same order, same words
    (commands kept out of the menu, which holds 10, are answered all the same)."""
    specs = [s for s in CATALOG.specs() if s.in_menu]
    assert specs, "the bot registers no commands"
    assert "help" in [s.name for s in specs]
    manifest = build_manifest(values())  # commands read from the catalog
    for entry in manifest["bots"][0]["commandLists"]:
        assert [c["title"] for c in entry["commands"]] == [s.name for s in specs]
        for command, spec in zip(entry["commands"], specs, strict=True):
            assert len(command["title"]) <= 32
            assert len(command["description"]) <= 128
            if len(spec.summary) <= 128:
                assert command["description"] == spec.summary
    assert [c.title for c in registered_commands()] == [s.name for s in specs]


def test_each_scope_lists_only_the_commands_offered_there() -> None:
    commands = [
        BotCommand("status", "Everywhere."),
        BotCommand("subscribe", "Personal only.", (Scope.PERSONAL.value,)),
    ]
    lists = build_manifest(values(), commands)["bots"][0]["commandLists"]
    titles = {entry["scopes"][0]: [c["title"] for c in entry["commands"]] for entry in lists}
    assert titles == {
        "team": ["status"],
        "groupChat": ["status"],
        "personal": ["status", "subscribe"],
    }


def test_long_descriptions_are_clipped_to_what_teams_shows() -> None:
    manifest = build_manifest(values(), [BotCommand("status", "word " * 100)])
    description = manifest["bots"][0]["commandLists"][0]["commands"][0]["description"]
    assert len(description) == 128
    assert description.endswith("…")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bot_id": ""}, "MicrosoftAppId"),
        ({"bot_id": "not-a-guid"}, "GUID"),
        ({"app_id": "mlbot"}, "Teams app id"),
        ({"name": "x" * 31}, "1-30"),
        ({"name": ""}, "1-30"),
        ({"version": "1.0"}, "1.2.3"),
        ({"version": "1.0.0-beta"}, "1.2.3"),
        ({"valid_domains": ("https://mlbot.contoso.com",)}, "host name"),
        ({"valid_domains": ("mlbot.contoso.com/api",)}, "host name"),
    ],
)
def test_bad_values_are_refused_with_the_reason(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_manifest(values(**overrides), COMMANDS)


def test_command_limits_are_enforced() -> None:
    with pytest.raises(ValueError, match="at most 10"):
        build_manifest(values(), [BotCommand(f"c{n}", "d") for n in range(11)])
    with pytest.raises(ValueError, match="1-32"):
        build_manifest(values(), [BotCommand("x" * 33, "d")])
    with pytest.raises(ValueError, match="no commands"):
        build_manifest(values(), [])


# --- the zip --------------------------------------------------------------------------------


def test_package_holds_the_manifest_and_icons_at_the_root(package: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        assert archive.read("color.png") == COLOR_ICON.read_bytes()
        assert archive.read("outline.png") == OUTLINE_ICON.read_bytes()
    assert manifest_of(package)["validDomains"] == ["mlbot.contoso.com"]


def test_package_build_is_repeatable(tmp_path: Path) -> None:
    first = build_package(tmp_path / "a" / "one.zip", values(), commands=COMMANDS)
    second = build_package(tmp_path / "b" / "two.zip", values(), commands=COMMANDS)
    assert first.read_bytes() == second.read_bytes()
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".mlbot-package-")]


def test_built_package_passes_every_rule(package: Path) -> None:
    require_schema()
    assert validate_package(package) == []


def test_manifest_matches_the_official_schema_draft7(package: Path) -> None:
    schema = require_schema()
    assert schema.parts[-2] == f"v{MANIFEST_VERSION}"
    assert schema_problems(manifest_of(package), schema) == []


def test_schema_version_is_current_and_shipped() -> None:
    major, minor = (int(part) for part in MANIFEST_VERSION.split("."))
    assert (major, minor) >= (1, 17)
    require_schema()


def test_draft7_enforces_const_so_a_wrong_manifest_version_fails(package: Path) -> None:
    """The file says draft-04, but relies on `const`: only a Draft 7 validator checks it."""
    schema = require_schema()
    manifest = manifest_of(package) | {"manifestVersion": "1.21"}
    problems = schema_problems(manifest, schema)
    assert any("manifestVersion" in p for p in problems)


def test_schema_errors_name_the_place(package: Path, tmp_path: Path) -> None:
    require_schema()
    manifest = manifest_of(package)
    manifest["accentColor"] = "blue"
    del manifest["developer"]["privacyUrl"]
    manifest["bots"][0]["scopes"] = ["team", "everywhere"]
    broken = rewrite(
        package, tmp_path / "bad.zip", **{"manifest.json": json.dumps(manifest).encode()}
    )
    problems = validate_package(broken)
    assert any(p.startswith("manifest.json: accentColor:") for p in problems)
    assert any("privacyUrl" in p for p in problems)
    assert any(p.startswith("manifest.json: bots/0/scopes/1:") for p in problems)


def test_missing_schema_is_a_problem_unless_optional(package: Path, tmp_path: Path) -> None:
    problems = validate_package(package, schema_root=tmp_path)
    assert len(problems) == 1
    assert "npm ci" in problems[0]
    assert validate_package(package, schema_root=tmp_path, require_schema=False) == []


def test_files_in_folders_are_refused(package: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        color = archive.read("color.png")
    nested = rewrite(package, tmp_path / "nested.zip", **{"icons/color.png": color})
    assert any("root of the zip" in p for p in validate_package(nested, require_schema=False))


def test_missing_manifest_or_icon_is_reported(package: Path, tmp_path: Path) -> None:
    no_manifest = rewrite(package, tmp_path / "a.zip", **{"manifest.json": None})
    assert validate_package(no_manifest, require_schema=False) == [
        "manifest.json: missing from the root of the zip"
    ]
    no_icon = rewrite(package, tmp_path / "b.zip", **{"outline.png": None})
    assert validate_package(no_icon, require_schema=False) == [
        "outline.png: the outline icon named in the manifest is not in the zip"
    ]


def test_not_a_zip_or_not_json_is_reported(package: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"hello")
    assert "not a readable zip" in validate_package(junk)[0]
    bad_json = rewrite(package, tmp_path / "c.zip", **{"manifest.json": b"{nope"})
    assert "not valid UTF-8 JSON" in validate_package(bad_json)[0]


def test_wrong_icon_sizes_are_reported(package: Path, tmp_path: Path) -> None:
    swapped = rewrite(
        package,
        tmp_path / "swapped.zip",
        **{"color.png": OUTLINE_ICON.read_bytes(), "outline.png": COLOR_ICON.read_bytes()},
    )
    problems = validate_package(swapped, require_schema=False)
    assert "color.png: must be 192x192 pixels, is 32x32" in problems
    assert "outline.png: must be 32x32 pixels, is 192x192" in problems


def test_colored_or_empty_outline_is_reported(package: Path, tmp_path: Path) -> None:
    red = bytearray(draw_outline_icon().rgba)
    red[0:4] = bytes((255, 0, 0, 255))
    colored = encode_png(Image(OUTLINE_SIZE, OUTLINE_SIZE, bytes(red)))
    problems = validate_package(
        rewrite(package, tmp_path / "red.zip", **{"outline.png": colored}), require_schema=False
    )
    assert problems == [
        "outline.png: 1 pixel(s) are neither white nor transparent; "
        "the outline icon must be white on a transparent background"
    ]
    blank = encode_png(Image(OUTLINE_SIZE, OUTLINE_SIZE, bytes(OUTLINE_SIZE * OUTLINE_SIZE * 4)))
    problems = validate_package(
        rewrite(package, tmp_path / "blank.zip", **{"outline.png": blank}), require_schema=False
    )
    assert problems == ["outline.png: is fully transparent, so Teams would show nothing"]


def test_overlong_command_title_in_an_uploaded_manifest_is_reported(
    package: Path, tmp_path: Path
) -> None:
    manifest = manifest_of(package)
    manifest["bots"][0]["commandLists"][0]["commands"][0]["title"] = "x" * 40
    changed = rewrite(
        package, tmp_path / "t.zip", **{"manifest.json": json.dumps(manifest).encode()}
    )
    assert any("longer than 32" in p for p in validate_package(changed, require_schema=False))


# --- icons --------------------------------------------------------------------------------


def test_shipped_icons_have_the_sizes_teams_requires() -> None:
    assert png_size(COLOR_ICON.read_bytes()) == (COLOR_SIZE, COLOR_SIZE) == (192, 192)
    assert png_size(OUTLINE_ICON.read_bytes()) == (OUTLINE_SIZE, OUTLINE_SIZE) == (32, 32)


def test_outline_icon_is_white_on_transparent() -> None:
    image = decode_png(OUTLINE_ICON.read_bytes())
    pixels = [image.pixel(x, y) for y in range(image.height) for x in range(image.width)]
    assert all(p[3] == 0 or p[:3] == (255, 255, 255) for p in pixels)
    assert any(p[3] == 255 for p in pixels) and any(p[3] == 0 for p in pixels)


def test_color_icon_is_opaque_with_a_glyph() -> None:
    image = decode_png(COLOR_ICON.read_bytes())
    pixels = {image.pixel(x, y) for y in range(image.height) for x in range(image.width)}
    assert all(p[3] == 255 for p in pixels)
    assert (15, 108, 189, 255) in pixels  # the accent color background
    assert (255, 255, 255, 255) in pixels  # the white glyph


def test_shipped_icons_are_what_the_generator_draws() -> None:
    """`python -m manifest.icons` regenerates them; the files must not drift from the code."""
    assert encode_png(draw_color_icon()) == COLOR_ICON.read_bytes()
    assert encode_png(draw_outline_icon()) == OUTLINE_ICON.read_bytes()


def _png(width: int, height: int, color_type: int, rows: list[bytes], extra: bytes = b"") -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def test_decoder_undoes_every_row_filter() -> None:
    # Gray pixels 10, 20 per row; each row uses another filter (None, Sub, Up, Average, Paeth).
    rows = [
        b"\x00" + bytes((10, 20)),
        b"\x01" + bytes((10, 10)),  # Sub: 20 = 10 + 10
        b"\x02" + bytes((0, 0)),  # Up: same as the row above
        b"\x03" + bytes((5, 5)),  # Average: 10 = 5 + (0+10)//2, 20 = 5 + (10+20)//2
        b"\x04" + bytes((0, 0)),  # Paeth picks the pixel above here
    ]
    image = decode_png(_png(2, 5, 0, rows))
    assert [image.pixel(x, y)[0] for y in range(5) for x in range(2)] == [10, 20] * 5


def test_decoder_reads_palette_and_transparency() -> None:
    palette = struct.pack(">I", 6) + b"PLTE" + bytes((255, 255, 255, 0, 0, 0))
    palette += struct.pack(">I", zlib.crc32(palette[4:]) & 0xFFFFFFFF)
    alpha = struct.pack(">I", 2) + b"tRNS" + bytes((255, 0))
    alpha += struct.pack(">I", zlib.crc32(alpha[4:]) & 0xFFFFFFFF)
    image = decode_png(_png(2, 1, 3, [b"\x00\x00\x01"], palette + alpha))
    assert image.pixel(0, 0) == (255, 255, 255, 255)
    assert image.pixel(1, 0) == (0, 0, 0, 0)


def test_decoder_refuses_what_it_cannot_read() -> None:
    with pytest.raises(PngError, match="not a PNG"):
        decode_png(b"GIF89a")
    corrupted = bytearray(encode_png(draw_outline_icon()))
    corrupted[40] ^= 0xFF
    with pytest.raises(PngError):
        decode_png(bytes(corrupted))


# --- the command ----------------------------------------------------------------------------


def test_manifest_command_writes_and_checks_the_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_from_mapping({"MicrosoftAppId": BOT_ID})
    out = tmp_path / "dist" / "mlbot.zip"
    assert manifest_command(settings, out) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert BOT_ID in printed and "status" in printed
    assert manifest_of(out)["bots"][0]["botId"] == BOT_ID


def test_manifest_command_needs_the_bot_app_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert manifest_command(settings_from_mapping({}), tmp_path / "x.zip") == 2
    assert "MicrosoftAppId" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()
