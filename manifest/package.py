"""The Teams app package: the zip an admin uploads so people can add mlbot to Teams.

A package is `manifest.json`, `color.png` and `outline.png` at the root of a zip. The
manifest starts from `manifest/template.json` (the constant parts, schema v1.22) and gets
the values that differ per installation: the Azure Bot's app id, the display name, the
version, the domains, and the bot's commands as Teams lists them in the compose box.
`validate_package` checks a zip the way Teams will, offline: layout, icons, the limits
Teams enforces on upload, and the official manifest JSON schema from the npm package
`@microsoft/app-manifest` (installed by `npm ci` from the repository's package.json).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.command_catalog import COMMANDS, EVERYWHERE
from manifest.icons import (
    COLOR_ICON,
    COLOR_SIZE,
    OUTLINE_ICON,
    OUTLINE_SIZE,
    PngError,
    decode_png,
    png_size,
)

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "BOT_SCOPES",
    "MANIFEST_VERSION",
    "BotCommand",
    "Developer",
    "ManifestValues",
    "build_manifest",
    "build_package",
    "find_manifest_schema",
    "manifest_command",
    "registered_commands",
    "validate_package",
]

TEMPLATE = Path(__file__).resolve().parent / "template.json"
# The schema version of template.json; its schema ships in @microsoft/app-manifest 1.1.x.
MANIFEST_VERSION = "1.22"
# Where `npm ci` puts the official schemas, one folder per version (v1.0 … v1.30).
SCHEMA_ROOT = (
    Path(__file__).resolve().parents[1]
    / "node_modules"
    / "@microsoft"
    / "app-manifest"
    / "build"
    / "json-schemas"
    / "teams"
)
# Channels, group chats and 1:1 chats: the bot posts alerts in all three.
BOT_SCOPES: tuple[str, ...] = tuple(str(scope) for scope in EVERYWHERE)
MANIFEST_FILE = "manifest.json"
# Limits Teams applies on upload beyond the JSON schema (documented for commandLists).
MAX_COMMANDS = 10
MAX_COMMAND_TITLE = 32
MAX_COMMAND_DESCRIPTION = 128
MAX_SHORT_NAME = 30
MAX_FULL_NAME = 100
FALLBACK_VERSION = "0.1.0"  # a source checkout that was never installed has no metadata

_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
# A host name, optionally with a leading `*.` wildcard; no scheme, path or port.
_DOMAIN = re.compile(r"^(\*\.)?([A-Za-z0-9-]+\.)*[A-Za-z0-9-]+$")
# A zip entry time inside the zip format's range; a fixed one makes builds repeatable.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class BotCommand:
    """One entry of the compose box's command menu: what users pick and what it does."""

    title: str
    description: str
    scopes: tuple[str, ...] = BOT_SCOPES  # where Teams offers it


@dataclass(frozen=True, slots=True)
class Developer:
    """Who publishes the app; Teams shows these links on the app's details page."""

    name: str
    website_url: str
    privacy_url: str
    terms_of_use_url: str


@dataclass(frozen=True, slots=True)
class ManifestValues:
    """What differs between installations; None keeps the template's text."""

    bot_id: str
    app_id: str | None = None  # the Teams app's own id; by default the bot's id
    name: str = "mlbot"
    full_name: str | None = None
    short_description: str | None = None
    full_description: str | None = None
    developer: Developer | None = None
    valid_domains: tuple[str, ...] = field(default=())
    version: str | None = None  # semver; by default the installed mlbot version

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ManifestValues:
        """The bot id and display name come from mlbot's own settings."""
        values: dict[str, Any] = {
            "bot_id": settings.microsoft_app_id,
            "name": settings.bot_display_name,
        }
        values.update(overrides)
        return cls(**values)


def app_version() -> str:
    """mlbot's installed version: Teams only accepts an update with a higher version."""
    try:
        return metadata.version("mlbot")
    except metadata.PackageNotFoundError:
        return FALLBACK_VERSION


def registered_commands() -> tuple[BotCommand, ...]:
    """The chat commands of the bot's catalog, in `help` order, as Teams lists them.

    Read from the same catalog the bot answers from, so the menu cannot drift from it.
    """
    return tuple(
        BotCommand(spec.name, spec.summary, tuple(str(scope) for scope in spec.scopes))
        for spec in COMMANDS.specs()
        if spec.in_menu
    )


def _clip(value: str, limit: int) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _command_lists(commands: Sequence[BotCommand]) -> list[dict[str, Any]]:
    if not commands:
        raise ValueError("the bot has no commands to list")
    for command in commands:
        if not command.title or len(command.title) > MAX_COMMAND_TITLE:
            raise ValueError(
                f"command title {command.title!r} must be 1-{MAX_COMMAND_TITLE} characters"
            )
    lists = []
    # One list per scope, as Teams asks, with the commands offered there.
    for scope in BOT_SCOPES:
        offered = [c for c in commands if scope in c.scopes]
        if len(offered) > MAX_COMMANDS:
            raise ValueError(f"Teams lists at most {MAX_COMMANDS} commands per scope")
        if offered:
            entries = [
                {"title": c.title, "description": _clip(c.description, MAX_COMMAND_DESCRIPTION)}
                for c in offered
            ]
            lists.append({"scopes": [scope], "commands": entries})
    return lists


def _check_values(values: ManifestValues, app_id: str, version: str) -> None:
    if not _GUID.match(values.bot_id):
        raise ValueError(
            f"bot id must be the Azure Bot's app id (MicrosoftAppId, a GUID); got {values.bot_id!r}"
        )
    if not _GUID.match(app_id):
        raise ValueError(f"Teams app id must be a GUID; got {app_id!r}")
    if not values.name or len(values.name) > MAX_SHORT_NAME:
        raise ValueError(f"app name must be 1-{MAX_SHORT_NAME} characters; got {values.name!r}")
    if not _SEMVER.match(version):
        raise ValueError(f"app version must look like 1.2.3; got {version!r}")
    for domain in values.valid_domains:
        if not _DOMAIN.match(domain):
            raise ValueError(
                f"valid domain {domain!r} must be a host name such as bot.example.com "
                "(no https://, path or port)"
            )


def load_template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TEMPLATE.read_text("utf-8"))
    return loaded


def build_manifest(
    values: ManifestValues, commands: Sequence[BotCommand] | None = None
) -> dict[str, Any]:
    """The manifest.json content; raises ValueError naming the first bad value.

    `commands` defaults to the bot's registered chat commands.
    """
    app_id = values.app_id or values.bot_id
    version = values.version or app_version()
    _check_values(values, app_id, version)
    listed = registered_commands() if commands is None else tuple(commands)

    manifest = load_template()
    manifest["id"] = app_id
    manifest["version"] = version
    full_name = values.full_name or manifest["name"]["full"].replace("%BOT_NAME%", values.name)
    manifest["name"] = {"short": values.name, "full": _clip(full_name, MAX_FULL_NAME)}
    if values.short_description is not None:
        manifest["description"]["short"] = values.short_description
    if values.full_description is not None:
        manifest["description"]["full"] = values.full_description
    if values.developer is not None:
        manifest["developer"] = {
            "name": values.developer.name,
            "websiteUrl": values.developer.website_url,
            "privacyUrl": values.developer.privacy_url,
            "termsOfUseUrl": values.developer.terms_of_use_url,
        }
    bot = manifest["bots"][0]
    bot["botId"] = values.bot_id
    bot["scopes"] = list(BOT_SCOPES)
    bot["commandLists"] = _command_lists(listed)
    manifest["validDomains"] = list(dict.fromkeys(values.valid_domains))
    return manifest


def _zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def build_package(
    out_path: Path,
    values: ManifestValues,
    *,
    commands: Sequence[BotCommand] | None = None,
    color_icon: Path = COLOR_ICON,
    outline_icon: Path = OUTLINE_ICON,
) -> Path:
    """Write the app package zip to `out_path` (replacing it) and return the path.

    The same inputs give the same bytes, so a package can be rebuilt and compared.
    """
    manifest = build_manifest(values, commands)
    body = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    files = {
        MANIFEST_FILE: body.encode("utf-8"),
        manifest["icons"]["color"]: color_icon.read_bytes(),
        manifest["icons"]["outline"]: outline_icon.read_bytes(),
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: an upload never picks up half a zip.
    handle, temp_name = tempfile.mkstemp(prefix=".mlbot-package-", dir=out_path.parent)
    os.close(handle)
    try:
        with zipfile.ZipFile(temp_name, "w") as archive:
            for name, data in files.items():
                archive.writestr(_zip_entry(name), data)
        Path(temp_name).replace(out_path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return out_path


# --- validation ---------------------------------------------------------------------------


def find_manifest_schema(version: str, root: Path | None = None) -> Path | None:
    """The official schema file for a manifest version, or None when npm has not installed it."""
    # The version comes from a zip under test: only well-formed ones become a path.
    if version == "devPreview":
        folder = "vDevPreview"
    elif re.fullmatch(r"1\.[0-9]{1,2}", version):
        folder = f"v{version}"
    else:
        return None
    path = (root or SCHEMA_ROOT) / folder / "MicrosoftTeams.schema.json"
    return path if path.is_file() else None


def schema_problems(manifest: dict[str, Any], schema_path: Path) -> list[str]:
    """Every place where `manifest` breaks the official schema, as readable lines.

    Draft 7, not the draft-04 the file declares: the schema relies on `const`, which
    draft-04 validators ignore, so they would accept any manifestVersion.
    """
    # jsonschema is a development tool (no type stubs installed): loaded by name, used as Any.
    jsonschema: Any = importlib.import_module("jsonschema")
    schema = json.loads(schema_path.read_text("utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        problems.append(f"{MANIFEST_FILE}: {where}: {error.message}")
    return problems


def _icon_problems(name: str, data: bytes, size: int, outline: bool) -> list[str]:
    try:
        width, height = png_size(data)
    except PngError as exc:
        return [f"{name}: {exc}"]
    if (width, height) != (size, size):
        return [f"{name}: must be {size}x{size} pixels, is {width}x{height}"]
    if not outline:
        return []
    try:
        image = decode_png(data)
    except PngError as exc:
        return [f"{name}: {exc}"]
    # Teams tints the outline icon with the theme: only white and transparency survive.
    colored = 0
    visible = 0
    for at in range(0, len(image.rgba), 4):
        red, green, blue, alpha = image.rgba[at : at + 4]
        if alpha == 0:
            continue
        visible += 1
        if (red, green, blue) != (255, 255, 255):
            colored += 1
    problems = []
    if colored:
        problems.append(
            f"{name}: {colored} pixel(s) are neither white nor transparent; "
            "the outline icon must be white on a transparent background"
        )
    if not visible:
        problems.append(f"{name}: is fully transparent, so Teams would show nothing")
    return problems


def _command_problems(manifest: dict[str, Any]) -> list[str]:
    problems = []
    for bot in manifest.get("bots") or []:
        if not isinstance(bot, dict):
            continue
        for command_list in bot.get("commandLists") or []:
            if not isinstance(command_list, dict):
                continue
            commands = command_list.get("commands") or []
            if len(commands) > MAX_COMMANDS:
                problems.append(f"{MANIFEST_FILE}: a command list has more than {MAX_COMMANDS}")
            for command in commands:
                if not isinstance(command, dict):
                    continue
                title = str(command.get("title", ""))
                if len(title) > MAX_COMMAND_TITLE:
                    problems.append(
                        f"{MANIFEST_FILE}: command title {title!r} is longer than "
                        f"{MAX_COMMAND_TITLE} characters"
                    )
                if len(str(command.get("description", ""))) > MAX_COMMAND_DESCRIPTION:
                    problems.append(
                        f"{MANIFEST_FILE}: description of {title!r} is longer than "
                        f"{MAX_COMMAND_DESCRIPTION} characters"
                    )
    return problems


def _schema_available(version: str, root: Path | None) -> Path | None:
    if importlib.util.find_spec("jsonschema") is None:
        return None
    return find_manifest_schema(version, root)


def validate_package(
    path: Path, *, schema_root: Path | None = None, require_schema: bool = True
) -> list[str]:
    """Everything Teams would refuse in the package at `path`; an empty list means valid.

    With `require_schema=False`, a missing official schema (no `npm ci`, or no
    `jsonschema`) skips that check instead of counting as a problem.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return [f"{path}: not a readable zip file ({exc})"]
    with archive:
        names = archive.namelist()
        problems = [
            f"{name}: files must sit at the root of the zip, not in a folder"
            for name in names
            if "/" in name or "\\" in name
        ]
        problems += [
            f"{name}: appears more than once"
            for name in sorted(set(names))
            if names.count(name) > 1
        ]
        if MANIFEST_FILE not in names:
            problems.append(f"{MANIFEST_FILE}: missing from the root of the zip")
            return problems
        try:
            manifest = json.loads(archive.read(MANIFEST_FILE).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{MANIFEST_FILE}: not valid UTF-8 JSON ({exc})")
            return problems
        if not isinstance(manifest, dict):
            problems.append(f"{MANIFEST_FILE}: must hold a JSON object")
            return problems

        found = manifest.get("icons")
        icons: dict[str, Any] = found if isinstance(found, dict) else {}
        for key, size in (("color", COLOR_SIZE), ("outline", OUTLINE_SIZE)):
            name = icons.get(key)
            if not isinstance(name, str) or not name:
                problems.append(f"{MANIFEST_FILE}: icons.{key} is missing")
            elif name not in names:
                problems.append(f"{name}: the {key} icon named in the manifest is not in the zip")
            elif not name.lower().endswith(".png"):
                problems.append(f"{name}: icons must be PNG files")
            else:
                problems += _icon_problems(name, archive.read(name), size, key == "outline")

    problems += _command_problems(manifest)
    version = str(manifest.get("manifestVersion", ""))
    schema_path = _schema_available(version, schema_root)
    if schema_path is not None:
        problems += schema_problems(manifest, schema_path)
    elif require_schema:
        problems.append(
            f"{MANIFEST_FILE}: cannot check against the official schema v{version}: "
            "install it with `npm ci` (and `jsonschema` in the virtual environment)"
        )
    return problems


def manifest_command(
    settings: Settings, out: Path, *, commands: Sequence[BotCommand] | None = None
) -> int:
    """`mlbot manifest --out FILE.zip`: build, check, and say what was written.

    Exit codes: 0 written and valid, 1 written but Teams would refuse it, 2 bad settings.
    """
    if not settings.microsoft_app_id:
        print(
            "mlbot manifest: set MicrosoftAppId (the Azure Bot's app id) first; "
            "Teams routes the app's messages to that bot",
            file=sys.stderr,
        )
        return 2
    try:
        path = build_package(out, ManifestValues.from_settings(settings), commands=commands)
    except ValueError as exc:
        print(f"mlbot manifest: {exc}", file=sys.stderr)
        return 2
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(MANIFEST_FILE))
    listed = [c["title"] for c in manifest["bots"][0]["commandLists"][0]["commands"]]
    print(
        f"wrote {path}: Teams app {manifest['id']} v{manifest['version']} "
        f"(manifest schema {manifest['manifestVersion']}), bot {manifest['bots'][0]['botId']}, "
        f"commands: {', '.join(listed)}"
    )
    problems = validate_package(path, require_schema=False)
    if _schema_available(str(manifest["manifestVersion"]), None) is None:
        print("note: not checked against the official schema; run `npm ci` to install it")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0
