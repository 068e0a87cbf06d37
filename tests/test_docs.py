"""The documentation site builds strictly, every page is in the nav, and the README stays short."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_mkdocs_strict_build(tmp_path):
    # strict + mkdocs.yml's validation: a broken link between pages, a missing anchor or a page
    # missing from the nav fails the build.
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "index.html").is_file()


def _nav_files(nav):
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            yield from _nav_files(value)
        else:
            yield value


def test_nav_lists_every_page_and_readme_is_short():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs" and config["strict"] is True
    in_nav = set(_nav_files(config["nav"]))
    pages = {p.name for p in DOCS.glob("*.md")}
    assert pages - in_nav == set(), "docs pages missing from mkdocs.yml's nav"
    assert in_nav - pages == set(), "nav entries without a page"

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; the reference belongs in docs/"
    quick = re.search(r"^## Quick start\n(.*?)(?=^## )", readme, re.DOTALL | re.MULTILINE)
    assert quick, "README.md has no '## Quick start' section"
    block = re.search(r"^```[^\n]*\n(.*?)^```", quick.group(1), re.DOTALL | re.MULTILINE)
    assert block, "Quick start has no code block"
    commands = [ln.strip() for ln in block.group(1).splitlines() if ln.strip()]
    assert commands[:2] == ["make demo", "make test"]


def test_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)]*)?\)", readme)
    for target in targets:
        assert (ROOT / target).is_file(), f"README.md links to a missing file: {target}"
    linked = {Path(t).name for t in targets if t.endswith(".md")}
    pages = {p.name for p in DOCS.glob("*.md")}
    assert pages - linked == set(), "docs pages the README's Documentation section does not link"
