"""Settings come from GAMIFY_* variables; bad values are all reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from gamify.platform.settings import Settings, SettingsError, ensure_secret, from_env


def test_defaults_mean_embedded_servers_in_dot_gamify() -> None:
    settings = from_env({})
    assert settings == Settings()
    assert settings.embedded
    assert settings.data_dir == Path(".gamify")
    assert settings.admin_token is None


def test_every_variable_is_read() -> None:
    settings = from_env(
        {
            "GAMIFY_DATABASE_URL": "postgresql://u@db/gamify",
            "GAMIFY_REDIS_URL": "redis://cache:6379/0",
            "GAMIFY_ADMIN_TOKEN": "a" * 20,
            "GAMIFY_DATA_DIR": "/var/lib/gamify",
            "GAMIFY_SECRET": "s" * 40,
            "GAMIFY_LOG_LEVEL": "debug",
            "GAMIFY_DB_POOL_SIZE": "30",
        }
    )
    assert not settings.embedded
    assert settings.log_level == "DEBUG"
    assert settings.db_pool_size == 30
    assert from_env(settings.to_env()) == settings


def test_bad_values_are_all_named() -> None:
    with pytest.raises(SettingsError) as caught:
        from_env(
            {
                "GAMIFY_DATABASE_URL": "mysql://nope",
                "GAMIFY_REDIS_URL": "memcached://nope",
                "GAMIFY_ADMIN_TOKEN": "short",
                "GAMIFY_SECRET": "short",
                "GAMIFY_LOG_LEVEL": "loud",
                "GAMIFY_DB_POOL_SIZE": "many",
            }
        )
    named = " ".join(caught.value.problems)
    for variable in (
        "DATABASE_URL",
        "REDIS_URL",
        "ADMIN_TOKEN",
        "SECRET",
        "LOG_LEVEL",
        "DB_POOL_SIZE",
    ):
        assert f"GAMIFY_{variable}" in named


def test_generated_secret_is_kept_in_the_data_folder(tmp_path: Path) -> None:
    first = ensure_secret(Settings(data_dir=tmp_path))
    assert first.secret is not None and len(first.secret) >= 32
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert ensure_secret(Settings(data_dir=tmp_path)).secret == first.secret


def test_a_configured_secret_wins(tmp_path: Path) -> None:
    settings = ensure_secret(Settings(data_dir=tmp_path, secret="x" * 40))
    assert settings.secret == "x" * 40
    assert not (tmp_path / "secret").exists()
