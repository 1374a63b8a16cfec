"""Dependencies are declared once (pyproject.toml) and mirrored in environment.yml."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["test"]
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_name(r): r.replace(" ", "") for r in pip if not r.startswith("-e")}


def test_environment_mirrors_pyproject():
    py, env = _pyproject(), _environment()
    assert sorted(set(py) - set(env)) == [], "in pyproject.toml but not environment.yml"
    assert sorted(set(env) - set(py)) == [], "in environment.yml but not pyproject.toml"
    differing = {k: (py[k], env[k]) for k in py if py[k] != env[k]}
    assert differing == {}, "version specifiers differ"


def test_requested_stack_is_declared():
    stack = {
        "jupyterlab",
        "jupytext",
        "torch",
        "numpy",
        "papermill",
        "ipywidgets",
        "plotly",
        "h5py",
        "pandas",
        "tqdm",
        "rapidfuzz",
        "onnxruntime",
    }
    assert stack <= set(_pyproject())


def test_cli_entry_points():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["semgkit"] == "semgkit.cli:main"
    assert (ROOT / "semgkit" / "__main__.py").is_file()


def _has_build_backend() -> bool:
    try:
        import setuptools
        import wheel  # noqa: F401
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 68


@pytest.mark.skipif(not _has_build_backend(), reason="needs setuptools>=68 and wheel here")
def test_install_into_an_environment_with_its_own_torch_keeps_it(tmp_path):
    """Colab or a conda env already holds a (CUDA) torch and the other requirements:
    `pip install -e .` must install the project and leave that torch alone. The fresh
    environment sees this interpreter's packages (torch, pip and setuptools included)
    through a .pth file, as --system-site-packages would; pip never removes a package
    outside its environment, so a wrong requirement would show as a second torch."""
    import site
    import subprocess
    import venv

    import torch

    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env)  # pip, setuptools: this interpreter's
    python = env / "bin" / "python"
    target = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    outer = [p for p in site.getsitepackages() if Path(p, "torch").is_dir()]
    if not outer:
        pytest.skip("torch is not in this interpreter's site-packages")
    Path(target, "outer.pth").write_text("\n".join(outer) + "\n")
    probe = "import torch; print(torch.__version__, torch.__file__)"
    before = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    assert before.stdout.split()[0] == torch.__version__
    command = [python, "-m", "pip", "install", "--no-build-isolation", "--no-index", "-e", "."]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode and "No matching distribution" in proc.stdout + proc.stderr:
        pytest.skip("a requirement is missing here and there is no index to fetch it from")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    installed = [line for line in proc.stdout.splitlines() if "Successfully installed" in line]
    assert installed and "torch" not in installed[0].replace("semgkit", ""), installed
    after = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    assert after.stdout == before.stdout  # the same torch, from the same place
    where = subprocess.run(
        [python, "-c", "import semgkit; print(semgkit.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert Path(where).parent == ROOT / "semgkit"  # the editable install of this checkout


def test_make_book_can_use_the_current_interpreter():
    """`make book ENV=current` runs the book with the interpreter PYTHON names, installing
    the project into it first (without a torch pin) instead of creating ./.venv."""
    import shutil
    import subprocess

    if not shutil.which("make"):
        pytest.skip("no make here")
    dry = [
        "make",
        "--no-print-directory",
        "-n",
        "book",
        "ENV=current",
        "PYTHON=/opt/py/bin/python",
        "PROFILE=single-user",
    ]
    lines = subprocess.run(dry, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert [line.strip() for line in lines.splitlines()] == [
        "/opt/py/bin/python -m pip install --quiet -e '.[test]'",
        "/opt/py/bin/python tools/book.py run --profile single-user --build build",
    ]
    bad = subprocess.run(
        ["make", "-n", "book", "ENV=conda"], cwd=ROOT, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "ENV=conda: must be venv" in bad.stderr
