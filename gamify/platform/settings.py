"""Configuration from the environment: every knob is a GAMIFY_* variable, read once."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import msgspec

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DATABASE_SCHEMES = ("postgres://", "postgresql://")
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
MIN_ADMIN_TOKEN_LENGTH = 16
MIN_SECRET_LENGTH = 32


class SettingsError(Exception):
    """One or more GAMIFY_* variables hold a value gamify cannot use."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything gamify reads from its environment.

    `database_url` / `redis_url` left as None mean: start embedded servers in `data_dir`.
    """

    database_url: str | None = None
    redis_url: str | None = None
    admin_token: str | None = None
    data_dir: Path = Path(".gamify")
    secret: str | None = None
    log_level: str = "INFO"
    db_pool_size: int = 10
    # Credits to loyalty systems: the longest wait between two attempts, and whether each
    # serving instance delivers (off when `gamify worker` processes do it alone).
    delivery_max_backoff: float = 300.0
    delivery_in_process: bool = True

    @property
    def embedded(self) -> bool:
        return self.database_url is None or self.redis_url is None

    def with_urls(self, database_url: str, redis_url: str | None) -> Settings:
        return msgspec.structs.replace(self, database_url=database_url, redis_url=redis_url)

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these settings in a child process (server workers)."""
        env = {
            "GAMIFY_DATA_DIR": str(self.data_dir),
            "GAMIFY_LOG_LEVEL": self.log_level,
            "GAMIFY_DB_POOL_SIZE": str(self.db_pool_size),
            "GAMIFY_DELIVERY_MAX_BACKOFF": str(int(self.delivery_max_backoff)),
            "GAMIFY_DELIVERY_IN_PROCESS": "1" if self.delivery_in_process else "0",
        }
        optional = {
            "GAMIFY_DATABASE_URL": self.database_url,
            "GAMIFY_REDIS_URL": self.redis_url,
            "GAMIFY_ADMIN_TOKEN": self.admin_token,
            "GAMIFY_SECRET": self.secret,
        }
        env.update({k: v for k, v in optional.items() if v is not None})
        return env


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check every GAMIFY_* variable, reporting all bad ones at once."""
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def text(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    database_url = text("GAMIFY_DATABASE_URL")
    if database_url and not database_url.startswith(DATABASE_SCHEMES):
        problems.append("GAMIFY_DATABASE_URL must start with postgresql:// (or postgres://)")
    redis_url = text("GAMIFY_REDIS_URL")
    if redis_url and not redis_url.startswith(REDIS_SCHEMES):
        problems.append(
            "GAMIFY_REDIS_URL must start with redis://, rediss://, unix:// or redis+cluster://"
        )
    admin_token = text("GAMIFY_ADMIN_TOKEN")
    if admin_token and len(admin_token) < MIN_ADMIN_TOKEN_LENGTH:
        problems.append(
            f"GAMIFY_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LENGTH} characters "
            "(unset it to turn the admin API off)"
        )
    secret = text("GAMIFY_SECRET")
    if secret and len(secret) < MIN_SECRET_LENGTH:
        problems.append(f"GAMIFY_SECRET must be at least {MIN_SECRET_LENGTH} characters")
    log_level = (text("GAMIFY_LOG_LEVEL") or "INFO").upper()
    if log_level not in LOG_LEVELS:
        problems.append(f"GAMIFY_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    pool_size = 10
    raw_pool = text("GAMIFY_DB_POOL_SIZE")
    if raw_pool is not None:
        if raw_pool.isdigit() and 1 <= int(raw_pool) <= 500:
            pool_size = int(raw_pool)
        else:
            problems.append("GAMIFY_DB_POOL_SIZE must be a whole number from 1 to 500")
    max_backoff = 300.0
    raw_backoff = text("GAMIFY_DELIVERY_MAX_BACKOFF")
    if raw_backoff is not None:
        if raw_backoff.isdigit() and 1 <= int(raw_backoff) <= 86_400:
            max_backoff = float(raw_backoff)
        else:
            problems.append("GAMIFY_DELIVERY_MAX_BACKOFF must be whole seconds from 1 to 86400")
    in_process = (text("GAMIFY_DELIVERY_IN_PROCESS") or "1").lower()
    if in_process not in ("1", "0", "true", "false"):
        problems.append("GAMIFY_DELIVERY_IN_PROCESS must be 1 or 0")
    if problems:
        raise SettingsError(problems)
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        admin_token=admin_token,
        data_dir=Path(text("GAMIFY_DATA_DIR") or ".gamify"),
        secret=secret,
        log_level=log_level,
        db_pool_size=pool_size,
        delivery_max_backoff=max_backoff,
        delivery_in_process=in_process in ("1", "true"),
    )


def ensure_secret(settings: Settings) -> Settings:
    """Fill `secret` from the data folder, generating it there on first use.

    Player tokens must stay valid across restarts and across workers, so a generated
    secret is persisted (mode 0600) rather than kept in memory.
    """
    if settings.secret is not None:
        return settings
    path = settings.data_dir / "secret"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Write aside, then link into place: a concurrent reader never sees a half-written
        # file, and whichever process links first wins for everyone.
        tmp = settings.data_dir / f".secret.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return msgspec.structs.replace(settings, secret=path.read_text().strip())
