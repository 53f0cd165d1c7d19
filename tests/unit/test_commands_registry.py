from __future__ import annotations

from bot.commands import CommandRegistry


def test_registry_finds_by_name_and_alias_and_suggests() -> None:
    registry: CommandRegistry[object] = CommandRegistry()

    @registry.command("status", usage="status", summary="s", aliases=("st",))
    async def status(ctx: object, args: str) -> None: ...

    @registry.command("help", usage="help", summary="h")
    async def help_(ctx: object, args: str) -> None: ...

    assert registry.find("STATUS") is registry.find("st")
    assert registry.find("nope") is None
    assert registry.suggest("stauts") == "status"
    assert registry.suggest("hlep") == "help"
    assert registry.suggest("deploy-everything") is None
    assert [s.name for s in registry.specs()] == ["status", "help"]
