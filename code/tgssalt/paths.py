"""Where things live: the repository's default data and outputs folders and its configs.

One source of truth for every top-level path, so scripts work from the repo root and from `code/`
alike. What lies inside an outputs folder is `layout.py`'s.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_FOLDER = REPO_ROOT / "data"
DEFAULT_OUTPUTS_FOLDER = REPO_ROOT / "outputs"
CONFIG_FOLDER = REPO_ROOT / "code" / "train-config"
