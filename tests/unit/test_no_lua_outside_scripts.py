"""Lua lives in storefront_jobs/broker/scripts/ only: `.lua` files there, read by one loader (STYLE.md 7c)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import storefront_jobs

PACKAGE = Path(storefront_jobs.__file__).parent
ROOT = PACKAGE.parent
SCRIPTS = PACKAGE / "broker" / "scripts"
#: What only Lua for Redis says: its calls into Redis, its script arguments, its JSON library.
LUA = re.compile(r"redis\.p?call\(|\bKEYS\[|\bARGV\[|cjson\.|\blocal function\b")


def repository_files() -> list[Path]:
    """The files git tracks, and the ones it would, below the repository root."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def test_no_python_module_of_the_package_holds_lua() -> None:
    holding = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if LUA.search(line)
    ]
    assert not holding, f"Lua belongs in a .lua file of {SCRIPTS.relative_to(ROOT)}: {holding}"


def test_every_lua_file_is_in_the_scripts_folder() -> None:
    lua_files = [path for path in repository_files() if path.suffix == ".lua"]
    assert lua_files, "the scripts folder holds the Lua scripts"
    outside = [str(path.relative_to(ROOT)) for path in lua_files if not path.is_relative_to(SCRIPTS)]
    assert not outside, f"move these into {SCRIPTS.relative_to(ROOT)}: {outside}"


def test_the_pattern_recognises_lua() -> None:
    assert LUA.search("return redis.call('LLEN', KEYS[1])")
    assert not LUA.search("pipe.llen(name)")
