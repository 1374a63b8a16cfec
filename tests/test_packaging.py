"""Dependencies are declared once (pyproject.toml) and mirrored in environment.yml."""

import re
import tomllib
from pathlib import Path

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
