"""The two layers: the method (``semgkit/*.py``) and the book's apparatus
(``semgkit/repro/``). The method never imports the apparatus, and the cache keys hash the
method structurally, so no module is ever listed by hand."""

import ast
import shutil
from pathlib import Path

import semgkit
from semgkit.repro import cache

METHOD = Path(semgkit.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute or relative, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                base = ".".join(["semgkit"] + ([base] if base else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def test_no_method_module_imports_the_apparatus():
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if m.startswith("semgkit.repro"))
        for path in sorted(METHOD.glob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_import_check_sees_every_form_of_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import semgkit.repro.results\n"
        "def f():\n    from semgkit.repro import recipes\n"
        "from .repro import cache\n"
    )
    found = imported_modules(sample)
    assert {"semgkit.repro.results", "semgkit.repro.recipes", "semgkit.repro.cache"} <= found


def test_the_cache_key_covers_a_new_method_module_without_a_list(tmp_path):
    """A copy of the package: adding a method module changes the key, editing or adding
    an apparatus module does not."""
    package = tmp_path / "semgkit"
    shutil.copytree(METHOD, package, ignore=shutil.ignore_patterns("__pycache__", "assets"))
    before = cache.method_hash("salt", package)
    assert before == cache.method_hash("salt", METHOD)
    (package / "repro" / "results.py").write_text("# a prose or table change\n")
    (package / "repro" / "new_table.py").write_text("X = 1\n")
    assert cache.method_hash("salt", package) == before
    (package / "new_loss.py").write_text("def loss(): return 0\n")
    assert cache.method_hash("salt", package) != before
    assert package / "new_loss.py" in cache.method_modules(package)
    assert cache.method_hash("other salt", package) != cache.method_hash("salt", package)


def test_the_run_key_changes_with_the_method_code(tmp_path):
    package = tmp_path / "semgkit"
    shutil.copytree(
        METHOD, package, ignore=shutil.ignore_patterns("__pycache__", "assets", "repro")
    )
    key = cache.method_hash("", package)
    train = package / "train.py"
    train.write_text(train.read_text() + "\n# a comment is a change\n")
    assert cache.method_hash("", package) != key


def semgkit_imports(path: Path) -> set[str]:
    """The semgkit modules ``path`` imports, by their short name."""
    found = set()
    for name in imported_modules(path):
        parts = name.split(".")
        if parts[0] == "semgkit" and len(parts) > 1 and parts[-1] not in ("repro", path.stem):
            is_module = any((METHOD / sub / f"{parts[-1]}.py").is_file() for sub in ("", "repro"))
            found |= {parts[-1]} if is_module else set()
    return found


def test_the_architecture_document_has_a_true_row_for_every_module():
    """docs/ARCHITECTURE.md: one row per module, its imports column what the code imports."""
    doc = (METHOD.parent / "docs" / "ARCHITECTURE.md").read_text()
    rows = {
        cells[1].strip(" `"): cells[-2].strip()
        for line in doc.splitlines()
        if line.startswith("| `") and (cells := line.split("|"))
    }
    paths = {p.stem: p for p in [*METHOD.glob("*.py"), *METHOD.glob("repro/*.py")]}
    assert paths.keys() - {"__init__", "__main__"} == rows.keys()
    for name, listed in rows.items():
        claimed = set() if listed == "nothing" else set(listed.split(", "))
        assert claimed == semgkit_imports(paths[name]), name
