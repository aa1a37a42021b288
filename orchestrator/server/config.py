"""Server settings: one frozen value, checked when it is built (fail closed on exposure)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

__all__ = ["ServerConfig", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerConfig(BaseModel):
    """How ``orchestrator serve`` listens and what it accepts.

    It binds loopback only unless ``allow_remote`` is set, and a non-loopback address also needs
    an ``api_key``. ``cors_origins`` lists the exact origins allowed to call from a browser; none
    means no CORS headers at all, and ``"*"`` is refused. ``max_active`` requests generate at once,
    up to ``max_queued`` more wait; past that the server answers 429. Bodies over
    ``max_body_bytes`` get 413. ``max_tokens`` is used when a request gives none, and no request may
    ask for more than ``max_tokens_cap``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # api_key and allow_remote come first: the host's check reads them (a field's error names its field)
    api_key: str | None = Field(None, min_length=8, max_length=512)
    allow_remote: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = Field(4 << 20, ge=1024, le=256 << 20)
    max_active: int = Field(32, ge=1, le=1024)
    max_queued: int = Field(128, ge=0, le=100_000)
    max_tokens: int = Field(512, ge=1, le=1_000_000)
    max_tokens_cap: int = Field(8192, ge=1, le=1_000_000)

    @field_validator("host")
    @classmethod
    def _check_host(cls, host: str, info: ValidationInfo) -> str:
        if not is_loopback(host):
            if not info.data.get("allow_remote"):
                raise ValueError(f"refusing to bind {host!r}: only loopback unless allow_remote (--allow-remote) is set")
            if not info.data.get("api_key"):
                raise ValueError(f"binding {host!r} (not loopback) needs an API key")
        return host

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if origin == "*" or "*" in origin:
                raise ValueError("CORS origins must be listed exactly; '*' is refused")
            if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                raise ValueError(f"CORS origin {origin!r} must look like http(s)://host[:port] without a trailing slash")
        return origins

    @model_validator(mode="after")
    def _check(self) -> ServerConfig:
        if self.max_tokens > self.max_tokens_cap:
            raise ValueError("max_tokens must not exceed max_tokens_cap")
        return self
