"""Which Bot Connector service URLs mlbot talks to (pure).

An activity's `serviceUrl` is where the bot sends its replies, with a fresh Bot
Connector token. Only Teams' own service hosts may receive them; in local mode, where
nobody is authenticated and no token is sent, only this machine (Agents Playground,
the test connector).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit


class RefusedServiceUrlError(PermissionError):
    """A service URL outside the allow-list: no connector client is made for it."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ServiceUrlPolicy:
    """`hosts` are exact host names (case-insensitive, `MLBOT_SERVICE_URL_HOSTS`);
    `loopback_only` is local mode."""

    hosts: tuple[str, ...]
    loopback_only: bool = False

    def allows(self, service_url: str | None) -> bool:
        if not service_url:
            return False
        try:
            parts = urlsplit(service_url)
            host = (parts.hostname or "").casefold()
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            return False
        if not host or parts.username is not None or parts.password is not None:
            return False
        loopback = _is_loopback(host)
        if self.loopback_only:
            return loopback and parts.scheme in ("http", "https")
        if host not in {allowed.strip().casefold() for allowed in self.hosts}:
            return False
        # Tokens travel only over TLS, except to a stand-in on this machine.
        return parts.scheme == "https" or (loopback and parts.scheme == "http")

    def check(self, service_url: str | None) -> None:
        """Raise RefusedServiceUrlError unless `service_url` is allowed."""
        if not self.allows(service_url):
            raise RefusedServiceUrlError("the service URL is not an allowed Teams address")
