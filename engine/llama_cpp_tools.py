"""llama.cpp's own conversion scripts, which turn a transformers folder or a PEFT adapter into
the GGUF that llama.cpp and Ollama load (`convert_hf_to_gguf.py`, `convert_lora_to_gguf.py`
and their `conversion` package).

They are not on PyPI as a package of their own; llama-cpp-python's source distribution vendors
llama.cpp, so the scripts are taken from it (a pinned version whose `gguf-py` is the `gguf`
release we install) into a cache folder, once: `python -m engine.llama_cpp_tools fetch`, which
`make` runs at install. `$FORGE_LLAMA_CPP` names a llama.cpp checkout to use instead. Nothing
in the archive is run or installed: three kinds of member are copied out, by name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from engine.errors import EngineError

LLAMA_CPP_PYTHON = "0.3.36"
"""The llama-cpp-python release whose vendored llama.cpp the scripts come from (its gguf-py is
gguf 0.19.0)."""

SCRIPTS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py")
PACKAGE = "conversion"
GGUF_PY = "gguf-py/gguf"
"""llama.cpp's own `gguf` package: the scripts need it, not the PyPI release (which lags)."""


def tools_dir() -> Path:
    """Where the scripts are: `$FORGE_LLAMA_CPP`, else the user's cache."""
    override = os.environ.get("FORGE_LLAMA_CPP")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ai-forge")) / f"llama.cpp-{LLAMA_CPP_PYTHON}"


def script(name: str) -> Path:
    """One of the converter scripts; a clear error saying how to get them when they are absent."""
    path = tools_dir() / name
    if not path.is_file() or not all((path.parent / p).is_dir() for p in (PACKAGE, GGUF_PY)):
        raise EngineError(
            f"llama.cpp's converter is not at {path.parent}: run "
            "`python -m engine.llama_cpp_tools fetch` once (it needs the package index), or set "
            "FORGE_LLAMA_CPP to a llama.cpp checkout"
        )
    return path


def _wanted(name: str, root: str) -> str | None:
    """The path inside the tools folder for an archive member we copy, else None."""
    prefix = f"{root}/vendor/llama.cpp/"
    if not name.startswith(prefix):
        return None
    inner = name[len(prefix) :]
    if inner in SCRIPTS:
        return inner
    folder, _, file = inner.rpartition("/")
    if folder in (PACKAGE, GGUF_PY) and file.endswith(".py"):
        return inner
    return None


def fetch(dest: Path | None = None) -> Path:
    """Download llama-cpp-python's source archive (not built, not installed) and copy the
    converter out of it into `dest` (default: `tools_dir()`); the folder it made."""
    dest = dest or tools_dir()
    if all((dest / name).is_file() for name in SCRIPTS) and (dest / GGUF_PY).is_dir():
        return dest
    with tempfile.TemporaryDirectory(prefix="forge-llama-cpp-") as tmp:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--no-binary", ":all:", "--dest", tmp, f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
            ],
            check=True,
        )  # fmt: skip
        archive = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        staging = Path(tmp) / "tools"
        root = f"llama_cpp_python-{LLAMA_CPP_PYTHON}"
        with tarfile.open(archive) as tar:
            for member in tar:
                inner = _wanted(member.name, root)
                if inner is None or not member.isfile():
                    continue
                target = staging / inner
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
        missing = [name for name in SCRIPTS if not (staging / name).is_file()]
        packages = [staging / PACKAGE / "__init__.py", staging / GGUF_PY / "__init__.py"]
        if missing or not all(p.is_file() for p in packages):
            raise EngineError(f"{archive.name}: no llama.cpp converter in it ({missing})")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(staging, dest)
    return dest


def script_env() -> dict[str, str]:
    """The environment a converter script runs in: llama.cpp's `gguf` ahead of the installed."""
    env = dict(os.environ)
    own = str(tools_dir() / "gguf-py")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [own, env.get("PYTHONPATH")]))
    return env


def main(argv: list[str]) -> int:
    if argv[1:] != ["fetch"]:
        print("usage: python -m engine.llama_cpp_tools fetch", file=sys.stderr)
        return 2
    print(f"llama.cpp's converter: {fetch()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
