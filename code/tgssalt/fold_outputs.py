"""Where one fold's outputs live, and what state they are in: complete, resumable or fresh.

Outputs are named `<name % version>-cvfold<k>` as the original did, under `models/`,
`figures/`, `tb_logs/`, `predictions/` and `submissions/` of the outputs folder.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from .config import config_difference
from .errors import UserError
from .paths import OUTPUT_SUBFOLDERS


def fold_complete(outputs_folder: Path, run: str) -> bool:
    """A fold is done when both of its last outputs exist (metrics JSON and test predictions)."""
    return FoldOutputs(Path(outputs_folder), run).complete()


@dataclass
class FoldOutputs:
    """Paths of one fold's outputs."""

    root: Path
    run: str

    def path(self, kind: str, suffix: str) -> Path:
        return self.root / kind / f"{self.run}{suffix}"

    @property
    def metrics(self) -> Path:
        return self.path("models", "-metrics.json")

    def complete(self) -> bool:
        return self.metrics.is_file() and self.path("predictions", "-test.npz").is_file()

    def resume_files(self) -> list[Path]:
        """The per-stage resume checkpoints, best-epoch and snapshot weights a run leaves
        until its fold is complete (the exported `.keras` files hold what is kept)."""
        models = self.root / "models"
        patterns = (
            f"{self.run}-stage*.resume.npz",
            f"{self.run}-stage*.best.weights.h5",
            f"{self.run}-stage*-snapshot*.weights.h5",
        )
        return sorted(p for pattern in patterns for p in models.glob(pattern))

    def prepare(self) -> None:
        """Create the output folders, failing clearly when the outputs folder is not writable."""
        try:
            for sub in OUTPUT_SUBFOLDERS:
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            probe = self.root / "models" / f".{self.run}.write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise UserError(
                f"{self.root}: outputs folder is not writable ({exc.strerror})"
            ) from None

    def start_over(self) -> None:
        """For --restart: forget the finished marker and every resume checkpoint."""
        for path in [self.metrics, *self.resume_files()]:
            path.unlink(missing_ok=True)

    def check_resumable(self, config: dict) -> bool:
        """True when a previous run of this fold left checkpoints to resume from; an error when
        they were made with another config (resuming would mix two experiments)."""
        if not self.resume_files():
            return False
        saved = self.path("models", "-config.json")
        if saved.is_file():
            current = json.loads(json.dumps(config))  # tuples -> lists, as saved
            difference = config_difference(json.loads(saved.read_text()), current)
            if difference is not None:
                raise UserError(
                    f"{saved}: an interrupted run of {self.run} used another config "
                    f"({difference}); rerun with --restart to discard its checkpoints"
                )
        return True

    def clear_resume(self) -> None:
        """Delete resume checkpoints once the fold is complete (they are large)."""
        for path in self.resume_files():
            path.unlink(missing_ok=True)
