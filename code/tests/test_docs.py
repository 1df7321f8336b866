"""The documentation: every config key described, generated pages fresh, relative links alive."""

import re
import shutil
from pathlib import Path

import pytest

import make_docs
from tgssalt import docs
from tgssalt.config_docs import DESCRIPTIONS

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def test_every_config_key_has_a_description() -> None:
    keys = [key for key, _ in docs.config_keys()]
    assert [k for k in keys if not DESCRIPTIONS.get(k, "").strip()] == []
    assert sorted(set(DESCRIPTIONS) - set(keys)) == []


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
    return [t for t in targets if not re.match(r"[a-z]+:|#", t)]


@pytest.mark.parametrize(
    "page", [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.name
)
def test_relative_links_point_to_existing_files(page: Path) -> None:
    broken = [t for t in _relative_links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert broken == [], f"{page.relative_to(REPO)}: broken links"
