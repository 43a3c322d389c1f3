#!/usr/bin/env python3
"""One entry point for a fresh clone: `python3 dev.py demo`, `serve` and `test`.

It keeps a virtual environment in `.venv`, (re)installs the project there whenever
pyproject.toml changes, then runs `gamify ARGS…` (`demo`, `serve`, any other command), or with
`test`, the linters and the tests.
Only the standard library is used here: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("GAMIFY_VENV", ROOT / ".venv"))
BIN = VENV / "bin"
STAMP = VENV / ".gamify-installed"


def ensure_environment() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    print("installing gamify and its test tools (first run takes a minute)", file=sys.stderr)
    subprocess.run(
        [BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-e", f"{ROOT}[test,embedded]"],
        check=True,
    )
    STAMP.write_text(wanted)


def run_tests(extra: list[str]) -> int:
    steps: list[list[str]] = [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "mypy")],
        # The packages' dependency direction (pyproject.toml, [tool.importlinter]).
        [str(BIN / "lint-imports"), "--no-cache"],
        [str(BIN / "pytest"), *extra],
    ]
    for step in steps:
        print("$", " ".join(step), file=sys.stderr, flush=True)
        code = subprocess.run(step, cwd=ROOT).returncode
        if code != 0:
            return code
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    ensure_environment()
    if argv[0] == "test":
        return run_tests(argv[1:])
    os.execv(BIN / "gamify", [str(BIN / "gamify"), *argv])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
