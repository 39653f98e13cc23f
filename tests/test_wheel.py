"""The distribution a person installs holds everything the product reads at run time.

`make test` and `make demo` use an editable install, which reads files from the source tree, so
a file left out of the wheel's package data (the TUI's stylesheet once was) shows only after a
real install. This builds the wheel from the project's files, installs it into a folder of its
own, and runs the TUI from there, headless, with the source tree off the path, and `forge web`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.forge_cli.test_web import get, serve_web

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("forge_api", "forge_client", "forge_cli", "forged", "agent", "engine", "tui")

TUI_FROM_THE_WHEEL = textwrap.dedent(
    """
    import asyncio, sys
    import tui
    from tui.app import ForgeApp

    assert tui.__file__.startswith(sys.argv[1]), tui.__file__

    async def main() -> None:
        app = ForgeApp()
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            print("screen", type(app.screen).__name__, len(app.stylesheet.rules), "rules")

    asyncio.run(main())
    """
)


def non_python_files(package: str) -> set[str]:
    """The files of a package the code reads at run time (everything but Python source)."""
    folder = ROOT / package
    return {
        str(path.relative_to(ROOT))
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix not in (".py", ".pyc")
        and "__pycache__" not in path.parts
        and not path.name.startswith(".")
    }


@pytest.mark.timeout(300)
def test_the_wheel_holds_its_data_and_the_tui_runs_from_it(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("ai_forge-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")  # what pip puts in site-packages
    wanted = set().union(*(non_python_files(p) for p in PACKAGES))
    assert wanted, "no data files found: the check would prove nothing"
    assert wanted <= names, f"left out of the wheel: {sorted(wanted - names)}"

    installed = tmp_path / "installed"
    env = dict(os.environ, PYTHONPATH=str(installed), FORGE_HOME=str(tmp_path / "home"))
    ran = subprocess.run(
        [sys.executable, "-c", TUI_FROM_THE_WHEEL, str(installed)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert ran.returncode == 0, (ran.stdout[-2000:], ran.stderr[-3000:])
    assert "screen DashboardScreen" in ran.stdout, ran.stdout

    # The browser view from the same install: it serves its page once it says its URL.
    with serve_web(env, tmp_path) as url:
        status, headers, _ = get(url)
        assert status == 302, (status, headers)
        session = headers["Set-Cookie"].split("forge_web=", 1)[1].split(";", 1)[0]
        status, _, page = get(url.split("?")[0], {"Cookie": f"forge_web={session}"})
        assert status == 200 and "AI Forge" in page
