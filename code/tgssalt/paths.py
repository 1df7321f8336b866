"""Where things live: the repository's default data and outputs folders, and a fold's run name.

One source of truth for every path, so scripts work from the repo root and from `code/` alike.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_FOLDER = REPO_ROOT / "data"
DEFAULT_OUTPUTS_FOLDER = REPO_ROOT / "outputs"
CONFIG_FOLDER = REPO_ROOT / "code" / "train-config"

OUTPUT_SUBFOLDERS = ("models", "figures", "tb_logs", "predictions", "submissions")


def run_name(name: str, version: object, fold: int | None) -> str:
    """The original's run name: `name % version`, plus `-cvfold<k>` when training one CV fold."""
    base = name % version if "%" in name else name
    return base if fold is None else f"{base}-cvfold{fold}"
