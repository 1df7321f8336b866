"""The run layout: the one place that forms and parses run names and artifact paths.

A config's base run is `name % version` (the original's naming). Each cross-validation fold is the
run `<base>-cvfold<k>`; a single train/validation split is the run `<base>` itself; the fold
ensemble is `<base>-ensemble`; a blend of several base runs' ensembles is `<a>+<b>-blend`
(`blend_run`), logged in the MLflow experiment `blends`. An ensemble or blend of only some of the
folds (`--folds 0,2`) is tagged with them, `<base>-folds0_2-ensemble`, `<a>+<b>-folds0_2-blend`
(`fold_subset`), so it never overwrites the one of every fold that predict.py and pseudo-labels
read. A config trained with a pseudo-label set
of round r (`data.pseudo_labels`, `pseudo_labels.py`) has the base run `<name % version>-pseudo<r>`;
the set for round r made from the run of round r-1 of `<root>` (`<root>` itself for round 0) is
named `<root>-pseudo<r>` too, so a chain of rounds of one config reads `<root>`,
`<root>-pseudo1`, ... Every artifact of a run lives in one subfolder of the outputs folder, named
after the run:

    folds/<base>.csv                      the cross-validation split (`splits.py`), written once
    folds/<base>-holdout.csv              the single split of a run without --cv-currentfold
    models/<run>-<stage>.keras            the probability model each stage exports
    models/<run>-<stage>.resume.npz       resume checkpoint (until the run is complete)
    models/<run>-<stage>.best.weights.h5  best epoch so far; `-<stage>-snapshot<c>.weights.h5`
    models/<run>-config.json, -metrics.json, .lock
    models/<base>-ensemble.json           the ensemble's threshold, min_area and scores
    models/<blend>.json                   a blend's members, weights, threshold, min_area, scores
    submissions/<blend>-submission.csv; figures/<blend>-weights.png
    predictions/<run>-valid.npz, -test.npz
    figures/<run>-*.png, -<stage>-log.csv; tb_logs/<run>-<stage>/
    submissions/<run>-submission.csv; logs/<run>.log (a fold trained as a child process)
    pseudo/<set>.json, <set>.csv, <set>-cvfold<k>.npz   a pseudo-label set: manifest (written
                                          last), summary, each fold's images and masks
    configs/<base>.json                   the config of a pseudo-label round (`pseudo_rounds.py`)
"""

import glob
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .config import STAGE_NAMES, Config, config_difference
from .errors import UserError

OUTPUT_SUBFOLDERS = ("models", "figures", "tb_logs", "predictions", "submissions")
FOLD_SUFFIX = "-cvfold"
ENSEMBLE_SUFFIX = "-ensemble"
BLEND_SUFFIX = "-blend"
FOLDS_TAG = "-folds"  # an ensemble of some folds only: <base>-folds0_2-ensemble
BLEND_EXPERIMENT = "blends"  # the MLflow experiment of every blend, to compare them side by side
MAX_BLEND_NAME = 100  # longer member lists are named by a digest (file names stay short)
ROUND_SUFFIX = "-pseudo"
SEED_INFIX = "-seed"
_FOLD_RUN = re.compile(rf"^(?P<base>.+){FOLD_SUFFIX}(?P<fold>\d+)$")
_ROUND_RUN = re.compile(rf"^(?P<root>.+){ROUND_SUFFIX}(?P<round>\d+)$")


def run_name(name: str, version: object, fold: int | None = None) -> str:
    """The original's run name: `name % version`, plus `-cvfold<k>` for CV fold `k`."""
    return fold_run(name % version if "%" in name else name, fold)


def base_run(config: Config) -> str:
    """A config's base run name, `name % version` (plus `-pseudo<r>` when it trains with a
    pseudo-label set of round r): its folds, split and ensemble hang off it."""
    root = run_name(config.name, config.version)
    pseudo = config.data.pseudo_labels
    return round_run(root, parse_round_run(pseudo)[1]) if pseudo else root


def seed_name(name: str, seed: int) -> str:
    """The config `name` of a copy trained under training seed `seed`: `-seed<s>` before the
    version (`best-%s` -> `best-seed1-%s`), or at the end of a name without `%s`."""
    if "-%s" in name:
        return name.replace("-%s", f"{SEED_INFIX}{seed}-%s", 1)
    return f"{name}{SEED_INFIX}{seed}"


def seed_run(run: str, seed: int) -> str:
    """The run that the copy under training seed `seed` of `run`'s config makes, for runs named
    `<stem>-<version>` (config names ending `-%s`, as `seed_name` renames them): `best64-1` ->
    `best64-seed1-1`; a pseudo-label round keeps its suffix (`best64-seed1-1-pseudo1`)."""
    root, round_ = parse_round_run(run)
    stem, dash, version = root.rpartition("-")
    seeded = f"{stem}{SEED_INFIX}{seed}-{version}" if dash else f"{root}{SEED_INFIX}{seed}"
    return round_run(seeded, round_)


def round_run(root: str, round_: int) -> str:
    """Round `round_` of run `root`: `root` itself for round 0, else `<root>-pseudo<round>`; also
    the name of the pseudo-label set that round `round_` of `root` trains with."""
    return root if round_ == 0 else f"{root}{ROUND_SUFFIX}{round_}"


def parse_round_run(name: str) -> tuple[str, int]:
    """(root, round) of a run or pseudo-label set name: the inverse of `round_run`."""
    match = _ROUND_RUN.match(name)
    return (match["root"], int(match["round"])) if match and int(match["round"]) else (name, 0)


def cv_run(name: str) -> str:
    """The cross-validation run named by `name`, a base run or its ensemble (`<base>-ensemble`)."""
    return name.removesuffix(ENSEMBLE_SUFFIX)


def fold_run(base: str, fold: int | None) -> str:
    """Fold `fold`'s run of base run `base`; `base` itself for a single split (`fold` None)."""
    return base if fold is None else f"{base}{FOLD_SUFFIX}{fold}"


def any_fold_run(base: str) -> str:
    """How messages name every fold run of `base`: `<base>-cvfold<k>`."""
    return f"{base}{FOLD_SUFFIX}<k>"


def parse_fold_run(run: str) -> tuple[str, int | None]:
    """(base, fold) of a run name: the inverse of `fold_run` (fold None for a single split)."""
    match = _FOLD_RUN.match(run)
    return (match["base"], int(match["fold"])) if match else (run, None)


def fold_subset(folds_used: list[int], n_folds: int) -> str:
    """The tag of an ensemble of only some of a run's `n_folds` folds, e.g. `-folds0_2`; empty
    when every fold is used. It keeps a fold-0 measurement from overwriting the ensemble of all
    folds, whose rule predict.py and the pseudo-labels read."""
    if sorted(set(folds_used)) == list(range(n_folds)):
        return ""
    return FOLDS_TAG + "_".join(str(k) for k in sorted(set(folds_used)))


def ensemble_run(base: str, subset: str = "") -> str:
    """The fold ensemble's run name (its MLflow run and the stem of its files); `subset` is
    `fold_subset`'s tag when not every fold is used."""
    return f"{base}{subset}{ENSEMBLE_SUFFIX}"


def blend_run(bases: list[str], name: str | None = None, subset: str = "") -> str:
    """A blend's run name: `<name>-blend`, by default the members joined by `+` in the order
    given (`a-1+b-2-blend`), or, when that is too long, the first member, their count and a
    digest of the list; `subset` (`fold_subset`) goes before `-blend`."""
    if name is None:
        name = "+".join(bases)
        if len(name) > MAX_BLEND_NAME:
            digest = hashlib.sha1("\n".join(bases).encode()).hexdigest()[:8]
            name = f"{bases[0]}+{len(bases) - 1}-more-{digest}"
    if not name or "/" in name or "\\" in name:
        raise UserError(f"blend name {name!r}: give a non-empty name without / or \\")
    return f"{name}{subset}{BLEND_SUFFIX}"


def is_blend_run(run: str) -> bool:
    """Whether `run` names a blend (`blend_run`) rather than a base run or a fold."""
    return run.endswith(BLEND_SUFFIX)


def fold_complete(outputs_folder: Path, run: str) -> bool:
    """A fold is done when both of its last outputs exist (metrics JSON and test predictions)."""
    return RunOutputs(Path(outputs_folder), run).complete()


@dataclass(frozen=True)
class Outputs:
    """An outputs folder: where each base run's split, folds and ensemble live."""

    root: Path

    def run(self, run: str) -> "RunOutputs":
        return RunOutputs(self.root, run)

    def split_file(self, base: str, holdout: bool = False) -> Path:
        """The split of base run `base`: its CV folds, or (`holdout`) its single split."""
        return self.root / "folds" / f"{base}{'-holdout' if holdout else ''}.csv"

    def child_log(self, run: str) -> Path:
        """The log of a fold trained as a child process (`fold_pool.train_pool`)."""
        return self.root / "logs" / f"{run}.log"

    def fold_runs(self, base: str) -> dict[int, "RunOutputs"]:
        """The folds of `base` with test predictions, by fold number."""
        found = {}
        pattern = f"{glob.escape(base + FOLD_SUFFIX)}*-test.npz"
        for path in (self.root / "predictions").glob(pattern):
            name, fold = parse_fold_run(path.name.removesuffix("-test.npz"))
            if name == base and fold is not None:
                found[fold] = self.run(fold_run(base, fold))
        return dict(sorted(found.items()))

    def fold_models(self, base: str) -> list["RunOutputs"]:
        """The folds of `base` with an exported model, by fold number."""
        folds = set()
        pattern = f"{glob.escape(base + FOLD_SUFFIX)}*-stage?.keras"
        for path in (self.root / "models").glob(pattern):
            name, fold = parse_fold_run(path.name.rsplit("-", 1)[0])
            if name == base and fold is not None:
                folds.add(fold)
        return [self.run(fold_run(base, fold)) for fold in sorted(folds)]

    def pseudo_set(self, name: str) -> "PseudoSetOutputs":
        """The files of pseudo-label set `name` (`pseudo_labels.py`)."""
        return PseudoSetOutputs(self.root / "pseudo", name)

    def derived_config(self, base: str) -> Path:
        """The config a command writes for base run `base`: a pseudo-label round's
        (`pseudo_rounds.py`) or a seed copy's trained as a child process (`seeds.py`)."""
        return self.root / "configs" / f"{base}.json"

    def ensemble(self, base: str, subset: str = "") -> "EnsembleOutputs":
        """What the ensemble of base run `base`'s folds writes (`subset`: see `fold_subset`)."""
        run = ensemble_run(base, subset)
        return EnsembleOutputs(
            submission=self.root / "submissions" / f"{run}-submission.csv",
            summary=self.root / "models" / f"{run}.json",
            figure=self.root / "figures" / f"{run}-threshold.png",
        )

    def blend(self, run: str) -> "EnsembleOutputs":
        """What the blend `run` (a `blend_run` name) writes."""
        return EnsembleOutputs(
            submission=self.root / "submissions" / f"{run}-submission.csv",
            summary=self.root / "models" / f"{run}.json",
            figure=self.root / "figures" / f"{run}-weights.png",
        )


@dataclass(frozen=True)
class EnsembleOutputs:
    """What the ensemble of a base run, or a blend, writes."""

    submission: Path
    summary: Path
    figure: Path


@dataclass(frozen=True)
class PseudoSetOutputs:
    """What a pseudo-label set writes: one file per fold, a summary, and its manifest (last)."""

    folder: Path
    name: str

    @property
    def manifest(self) -> Path:
        return self.folder / f"{self.name}.json"

    @property
    def summary(self) -> Path:
        return self.folder / f"{self.name}.csv"

    def fold(self, fold: int) -> Path:
        """Fold `fold`'s pseudo-labels: from fold `fold`'s own model only."""
        return self.folder / f"{fold_run(self.name, fold)}.npz"


@dataclass(frozen=True)
class RunOutputs:
    """The artifacts of one run (a fold or a single split), and the state they are in:
    complete, resumable or fresh."""

    root: Path
    run: str
    models_folder: Path | None = None  # set for a model file outside an outputs folder

    @classmethod
    def of_model(cls, path: Path) -> "RunOutputs":
        """The run of a model file `<run>-<stage>.keras`, its config and metrics beside it."""
        stem = Path(path).name.removesuffix(".keras")
        for stage in STAGE_NAMES:
            stem = stem.removesuffix(f"-{stage}")
        return cls(Path(path).parent.parent, stem, Path(path).parent)

    def _file(self, kind: str, suffix: str) -> Path:
        folder = self.models_folder if kind == "models" and self.models_folder else self.root / kind
        return folder / f"{self.run}{suffix}"

    @property
    def base(self) -> str:
        return parse_fold_run(self.run)[0]

    @property
    def fold(self) -> int | None:
        return parse_fold_run(self.run)[1]

    @property
    def metrics(self) -> Path:
        return self._file("models", "-metrics.json")

    @property
    def config(self) -> Path:
        return self._file("models", "-config.json")

    @property
    def lock(self) -> Path:
        return self._file("models", ".lock")

    def predictions(self, split: str) -> Path:
        """`split` "valid" or "test"."""
        return self._file("predictions", f"-{split}.npz")

    @property
    def submission(self) -> Path:
        return self._file("submissions", "-submission.csv")

    def figure(self, what: str) -> Path:
        """A figure: "threshold", "validation" or a stage name (its history)."""
        return self._file("figures", f"-{what}.png")

    def history_log(self, stage: str) -> Path:
        return self._file("figures", f"-{stage}-log.csv")

    def tb_logs(self, stage: str) -> Path:
        return self._file("tb_logs", f"-{stage}")

    def model(self, stage: str) -> Path:
        return self._file("models", f"-{stage}.keras")

    def resume(self, stage: str) -> Path:
        return self._file("models", f"-{stage}.resume.npz")

    def best_weights(self, stage: str) -> Path:
        return self._file("models", f"-{stage}.best.weights.h5")

    def snapshot(self, stage: str, cycle: int) -> Path:
        """The weights of cosine cycle `cycle` (0-based) of `stage`."""
        return self._file("models", f"-{stage}-snapshot{cycle + 1}.weights.h5")

    def latest_model(self) -> Path | None:
        """The last stage's exported model present (stage 2, else stage 1), or None."""
        for stage in reversed(STAGE_NAMES):
            if self.model(stage).is_file():
                return self.model(stage)
        return None

    def complete(self) -> bool:
        return self.metrics.is_file() and self.predictions("test").is_file()

    def resume_files(self) -> list[Path]:
        """The per-stage resume checkpoints, best-epoch and snapshot weights a run leaves
        until it is complete (the exported `.keras` files hold what is kept)."""
        models = self.root / "models"
        run = glob.escape(self.run)
        patterns = (
            f"{run}-stage*.resume.npz",
            f"{run}-stage*.best.weights.h5",
            f"{run}-stage*-snapshot*.weights.h5",
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

    def config_mismatch(self, config: Config) -> str | None:
        """How `config` differs from the one this run saved (`key: old -> new`); None when it
        does not, or when no config was saved."""
        if not self.config.is_file():
            return None
        return config_difference(json.loads(self.config.read_text()), config.to_dict())

    def start_over(self) -> None:
        """For --restart: forget the finished marker and every resume checkpoint."""
        for path in [self.metrics, *self.resume_files()]:
            path.unlink(missing_ok=True)

    def check_resumable(self, config: Config) -> bool:
        """True when a previous run left checkpoints to resume from; an error when they were
        made with another config (resuming would mix two experiments)."""
        if not self.resume_files():
            return False
        difference = self.config_mismatch(config)
        if difference is not None:
            raise UserError(
                f"{self.config}: an interrupted run of {self.run} used another config "
                f"({difference}); rerun with --restart to discard its checkpoints"
            )
        return True

    def clear_resume(self) -> None:
        """Delete resume checkpoints once the run is complete (they are large)."""
        for path in self.resume_files():
            path.unlink(missing_ok=True)
