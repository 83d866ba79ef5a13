"""The documentation builds without warnings, and every Python block of the README and docs runs."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = REPO_ROOT / "docs"

_MD_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_RST_BLOCK = re.compile(r"^\.\. code-block:: python[^\n]*\n((?:[ \t]*\n|[ \t]+[^\n]*\n)+)", re.M)


def python_blocks(path: Path) -> list[str]:
    """The Python code blocks of a Markdown (```python) or reStructuredText file."""
    text = path.read_text()
    if path.suffix == ".md":
        return [m.group(1) for m in _MD_BLOCK.finditer(text)]
    blocks = []
    for m in _RST_BLOCK.finditer(text):
        lines = m.group(1).splitlines()
        indented = [ln for ln in lines if ln.strip()]
        indent = min(len(ln) - len(ln.lstrip()) for ln in indented)
        blocks.append("\n".join(ln[indent:] for ln in lines).strip() + "\n")
    return blocks


def test_block_extraction():
    md = "x\n```python\na = 1\n```\n```bash\nls\n```\n"
    rst = "T\n\n.. code-block:: python\n\n    a = 1\n    if a:\n        b = 2\n\nafter\n"
    assert _MD_BLOCK.findall(md) == ["a = 1\n"]
    assert [m.group(1) for m in _RST_BLOCK.finditer(rst)] == [
        "\n    a = 1\n    if a:\n        b = 2\n\n"
    ]


# docs/tuning.rst is not run here: its examples (Dask, Optuna, MLflow) need optional extras and
# are run by the tuning tests themselves.
NOT_RUN_HERE = {"tuning.rst"}
DOC_FILES = ["README.md"] + [
    f"docs/{p.name}" for p in sorted(DOCS.glob("*.rst")) if p.name not in NOT_RUN_HERE
]
WITH_CODE = [name for name in DOC_FILES if python_blocks(REPO_ROOT / name)]
MUST_PRINT = {"README.md", "docs/quickstart.rst", "docs/evaluation.rst"}


def test_the_pages_users_start_from_have_code_to_run():
    assert MUST_PRINT <= set(WITH_CODE)


@pytest.mark.parametrize("name", WITH_CODE)
def test_code_examples_run(name, tmp_path, monkeypatch, capsys):
    """Each page's blocks run in order, in one namespace, as written: nothing defined for them."""
    blocks = python_blocks(REPO_ROOT / name)
    monkeypatch.chdir(tmp_path)  # examples write their generated data to the working directory
    namespace: dict = {"__name__": "__example__"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{name}[block {i}]", "exec"), namespace)  # noqa: S102
    if name in MUST_PRINT:
        assert capsys.readouterr().out  # these examples print their result


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    for module in ("sphinx", "numpydoc"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install -e '.[docs]')")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html"]
    cmd += ["-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert (tmp_path / "html" / "api.html").is_file()


USER_DOCS = ["README.md", *(f"docs/{p.name}" for p in sorted(DOCS.glob("*.rst")))]
WORK_TALK = re.compile(r"\b(issues?|issue tracker|helpers?|work items?)\b|#\d+", re.IGNORECASE)


# How or where the package was made: its modules are modules, its measurements are facts.
MAKING_TALK = re.compile(
    r"\brooms?\b|this project|project's|available to .{0,40}sessions|(?:measured|was|were) "
    r"before\b.{0,200}\band now\b|shared data folder",
    re.IGNORECASE | re.DOTALL,
)


@pytest.mark.parametrize("name", USER_DOCS)
def test_user_docs_speak_of_the_package_only(name):
    # No work-item numbers or word of how the package was developed in what users read.
    text = (REPO_ROOT / name).read_text()
    found = [m.group(0) for m in WORK_TALK.finditer(text)]
    found += [m.group(0) for m in MAKING_TALK.finditer(text)]
    assert not found, f"{name}: {found}"


def test_test_messages_speak_of_the_package_only():
    # What a user running the tests reads: skip reasons and failure messages.
    found = {
        p.name: [m.group(0) for m in MAKING_TALK.finditer(p.read_text())]
        for p in sorted((REPO_ROOT / "tests").glob("*.py"))
        if p.name != "test_docs.py"
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_benchmarks_page_says_what_ran_on_what():
    text = (DOCS / "benchmarks.rst").read_text()
    assert "measured on the CPUs" in text and "none on a GPU" in text
