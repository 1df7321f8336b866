"""The documentation: every config key described, generated pages fresh, relative links alive."""

import fnmatch
import re
import shutil
from pathlib import Path

import make_docs
import pytest
from tgssalt import docs
from tgssalt.config_docs import DESCRIPTIONS
from tgssalt.paths import CONFIG_FOLDER

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def test_every_config_key_has_a_description() -> None:
    keys = [key for key, _ in docs.config_keys()]
    assert [k for k in keys if not DESCRIPTIONS.get(k, "").strip()] == []
    assert sorted(set(DESCRIPTIONS) - set(keys)) == []


def test_every_shipped_config_has_a_row_in_the_configuration_guide() -> None:
    """The guide's "Shipped configs" table names each config (or a pattern that matches it)."""
    text = (REPO / docs.CONFIG_PAGE).read_text()
    table = text.split("## Shipped configs", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE)
    assert "best64-longest.json" in named  # the table was found and parsed
    unlisted = [
        path.name
        for path in sorted(CONFIG_FOLDER.glob("*.json"))
        if not any(fnmatch.fnmatch(path.name, pattern) for pattern in named)
    ]
    assert unlisted == []


def test_the_generated_pages_are_fresh() -> None:
    stale = docs.stale_pages(REPO)
    assert not stale, f"{', '.join(stale)} stale: run python code/make_docs.py"


def test_the_reference_lists_every_key_and_name() -> None:
    text = docs.render_config_reference()
    for key, _ in docs.config_keys():
        assert f"| `{key}` |" in text
    for registry in (docs.losses(), docs.optimizers(), docs.schedules(), docs.precisions()):
        assert all(f"`{name}`" in text for name in registry)
    page = docs.render_backbones_page()
    assert all(f"| `{name}` |" in page for name in (*docs.backbones(), *docs.decoders()))


def _copy_pages(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    return tmp_path


def test_check_fails_on_a_stale_page_and_make_docs_repairs_it(tmp_path, capsys) -> None:
    root = _copy_pages(tmp_path)
    page = root / docs.CONFIG_PAGE
    page.write_text(page.read_text().replace("| `seed` |", "| `sEEd` |"))
    with pytest.raises(SystemExit) as exit_info:
        make_docs.main(["--check", "--root", str(root)])
    assert exit_info.value.code == 1
    assert "docs/configuration.md: run python code/make_docs.py" in capsys.readouterr().err
    make_docs.main(["--root", str(root)])
    assert (root / docs.CONFIG_PAGE).read_text() == (REPO / docs.CONFIG_PAGE).read_text()
    make_docs.main(["--check", "--root", str(root)])


def test_a_page_without_markers_is_a_one_line_error(tmp_path) -> None:
    root = _copy_pages(tmp_path)
    (root / docs.CONFIG_PAGE).write_text("# Configuration\n")
    with pytest.raises(docs.UserError, match="docs/configuration.md: markers"):
        docs.stale_pages(root)


def _relative_links(page: Path) -> list[str]:
    targets = LINK.findall(page.read_text())
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for a Markdown page's headings (code blocks skipped)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _broken(page: Path, target: str) -> bool:
    path, _, anchor = target.partition("#")
    file = page.parent / path if path else page
    if not file.exists():
        return True
    return bool(anchor) and file.suffix == ".md" and anchor not in _anchors(file)


@pytest.mark.parametrize(
    "page",
    [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_relative_links_point_to_existing_files_and_headings(page: Path) -> None:
    broken = [t for t in _relative_links(page) if _broken(page, t)]
    assert broken == [], f"{page.relative_to(REPO)}: broken links"
