"""Bad input fails with a one-line `UserError` (exit status 2 from the CLI), before any output.

Most cases call `tgssalt.data` and `train_fold` directly; a few go through `train_fold.py`'s
`main` and its `run_cli` wrapper to check what the user sees: exit status 2, a last stderr line
`error: ...` naming the culprit, no traceback, and no outputs folder. One of them starts the
script as a real process; the others run it in this process (a new process would spend its
time importing TensorFlow).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from tgssalt import data
from tgssalt.config import load_config
from tgssalt.data import load_train, read_ids, read_png, resolve_data_folder
from tgssalt.errors import UserError
from tgssalt.fold_training import train_fold
from tgssalt.paths import CONFIG_FOLDER, REPO_ROOT
from tgssalt.splits import assign_folds
from tgssalt.synthetic import generate_dataset

CONFIG = CONFIG_FOLDER / "test" / "unet-resnet-test.json"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid 40-train / 10-test data set, copied (not modified) by each test."""
    out = tmp_path_factory.mktemp("pristine")
    generate_dataset(out, n_train=40, n_test=10, seed=3)
    return out


@pytest.fixture
def folder(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the valid data set, for a test to corrupt."""
    return Path(shutil.copytree(pristine, tmp_path / "data"))


def ids_of(csv: Path) -> list[str]:
    return pd.read_csv(csv, dtype=str, keep_default_na=False)["id"].tolist()


def first_train(folder: Path, kind: str) -> Path:
    return folder / "train" / kind / f"{ids_of(folder / 'train.csv')[0]}.png"


def first_test(folder: Path) -> Path:
    return folder / "test" / "images" / f"{ids_of(folder / 'sample_submission.csv')[0]}.png"


def save_png(path: Path, side: int) -> None:
    Image.fromarray(np.full((side, side, 3), 128, np.uint8)).save(path)


# Each corruption: (what to do to a valid data folder, the file named in the error, the error text).
def _missing_folder(f: Path) -> Path:
    shutil.rmtree(f)
    return f


def _no_train_csv(f: Path) -> Path:
    (f / "train.csv").unlink()
    return f


def _wrong_size(f: Path) -> Path:
    save_png(first_train(f, "images"), 64)
    return f / "train" / "images"


def _two_wrong_sizes(f: Path) -> Path:
    ids = ids_of(f / "train.csv")
    save_png(f / "train" / "images" / f"{ids[3]}.png", 64)
    save_png(f / "train" / "images" / f"{ids[7]}.png", 128)
    return f / "train" / "images"


def _grey_mask(f: Path) -> Path:
    mask = np.zeros((101, 101), np.uint8)
    mask[10:50, 10:50], mask[50:60, 10:50] = 255, 128
    Image.fromarray(mask).save(first_train(f, "masks"))
    return f / "train" / "masks"


def _single_channel_image(f: Path) -> Path:
    Image.fromarray(np.full((101, 101), 128, np.uint8)).save(first_train(f, "images"))
    return f / "train" / "images"


def _missing_depth(f: Path) -> Path:
    depths = pd.read_csv(f / "depths.csv", dtype=str)
    depths[depths["id"] != ids_of(f / "train.csv")[0]].to_csv(f / "depths.csv", index=False)
    return f / "depths.csv"


def _extra_test_image(f: Path) -> Path:
    save_png(f / "test" / "images" / "unlisted.png", 101)
    return f / "test" / "images"


def _decompression_bomb(f: Path) -> Path:
    Image.new("L", (5000, 5000)).save(first_train(f, "images"))  # 25 Mpx, a few KB on disk
    return first_train(f, "images")


def _corrupt_mask(f: Path) -> Path:
    first_train(f, "masks").write_bytes(b"\x89PNG garbage" * 10)
    return first_train(f, "masks")


def _truncated_image(f: Path) -> Path:
    path = first_train(f, "images")
    path.write_bytes(path.read_bytes()[:300])
    return path


def _missing_mask(f: Path) -> Path:
    first_train(f, "masks").unlink()
    return f / "train" / "masks"


def _empty_train(f: Path) -> Path:
    (f / "train.csv").write_text("id,rle_mask\n")
    return f / "train.csv"


def _missing_test_image(f: Path) -> Path:
    first_test(f).unlink()
    return f / "test" / "images"


def _wrong_size_test_image(f: Path) -> Path:
    save_png(first_test(f), 128)
    return f / "test" / "images"


def _corrupt_test_image(f: Path) -> Path:
    first_test(f).write_bytes(b"not a png")
    return first_test(f)


def _path_in_id(f: Path) -> Path:
    (f / "train.csv").write_text("id,rle_mask\n../../etc/passwd,\n")
    return f / "train.csv"


CASES = {
    "missing data folder": (_missing_folder, "data folder not found"),
    "no train.csv": (_no_train_csv, "no train.csv"),
    "64x64 image": (_wrong_size, "1 image(s) are not 101x101, e.g. "),
    "two odd sizes": (_two_wrong_sizes, "2 image(s) are not 101x101, e.g. "),
    "grey mask": (_grey_mask, "1 mask(s) are not binary"),
    "single-channel image": (_single_channel_image, "1 image(s) differ from the usual 3 channel"),
    "missing depth": (_missing_depth, "1 id(s) have no numeric depth"),
    "unlisted test image": (_extra_test_image, "1 image(s) are not listed in sample_submission"),
    "decompression bomb": (_decompression_bomb, "image is 5000x5000, over the 16,777,216-pixel"),
    "corrupt mask": (_corrupt_mask, "cannot read image"),
    "truncated image": (_truncated_image, "cannot read image"),
    "missing mask": (_missing_mask, "1 mask(s) missing"),
    "empty train set": (_empty_train, "the train set is empty"),
    "missing test image": (_missing_test_image, "1 test image(s) missing"),
    "wrong-size test image": (_wrong_size_test_image, "1 image(s) are not 101x101"),
    "corrupt test image": (_corrupt_test_image, "cannot read image"),
    "path in id": (_path_in_id, "not plain file names"),
}


@pytest.mark.parametrize("case", CASES)
def test_train_fold_fails_before_writing(case: str, folder: Path, tmp_path: Path) -> None:
    corrupt, expected = CASES[case]
    culprit = corrupt(folder)
    outputs = tmp_path / "outputs"
    with pytest.raises(UserError) as info:
        train_fold(load_config(CONFIG), 0, folder, outputs)
    message = str(info.value)
    assert expected in message and "\n" not in message
    assert message.startswith(str(culprit))
    assert not outputs.exists()  # no folders, config or mlflow.db


def test_fold_out_of_range_fails_before_writing(folder: Path, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    with pytest.raises(UserError, match=r"--cv-currentfold 7 is out of range.*4 folds"):
        train_fold(load_config(CONFIG), 7, folder, outputs)
    assert not outputs.exists()


def test_unwritable_outputs_folder(folder: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("in the way\n")
    with pytest.raises(UserError, match="outputs folder is not writable"):
        train_fold(load_config(CONFIG), 0, folder, blocker / "out")
    assert blocker.read_text() == "in the way\n"


def test_data_folder_may_be_a_parent_holding_data(folder: Path) -> None:
    parent = folder.parent
    assert folder.name == "data"
    assert resolve_data_folder(parent) == folder
    assert resolve_data_folder(folder) == folder
    assert len(data.test_ids(resolve_data_folder(parent))) == 10


def test_load_train_reads_the_copy(folder: Path) -> None:
    dataset = load_train(folder)
    assert dataset.images.shape == (40, 101, 101, 1) and dataset.masks.shape == (40, 101, 101)
    assert set(np.unique(dataset.masks)) <= {0, 1}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (["a/b"], "not plain file names"),
        (["..\\x"], "not plain file names"),
        ([".."], "not plain file names"),
        (["/abs"], "not plain file names"),
        ([""], "not plain file names"),
        (["abc", "abc"], "duplicate ids"),
    ],
)
def test_read_ids_rejects_unsafe_or_duplicate_ids(
    tmp_path: Path, rows: list[str], expected: str
) -> None:
    csv = tmp_path / "train.csv"
    csv.write_text("id,rle_mask\n" + "".join(f"{r},\n" for r in rows))
    with pytest.raises(UserError, match=expected):
        read_ids(csv)


def test_read_ids_needs_an_id_column(tmp_path: Path) -> None:
    csv = tmp_path / "train.csv"
    csv.write_text("name,rle_mask\nabc,\n")
    with pytest.raises(UserError, match="no 'id' column"):
        read_ids(csv)
    csv.write_text("")
    with pytest.raises(UserError, match="not a readable CSV"):
        read_ids(csv)


def test_read_ids_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = tmp_path / "train.csv"
    csv.write_text("id\nabc\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(data.pd, "read_csv", denied)
    with pytest.raises(UserError, match="Permission denied"):
        read_ids(csv)


def test_read_png_missing(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="image not found"):
        read_png(tmp_path / "nope.png")


@pytest.mark.parametrize(("n", "folds", "fold"), [(1, 4, None), (5, 1, None), (3, 4, 0)])
def test_too_few_images_to_split(n: int, folds: int, fold: int | None) -> None:
    rng = np.random.default_rng(0)
    masks = (rng.random((n, 101, 101)) < rng.random((n, 1, 1))).astype(np.uint8)
    with pytest.raises(UserError, match="too few"):
        assign_folds(masks, folds, fold is None or folds == 1, 0)


# ---------------------------------------------------------------------------------------------
# Through the real CLI: what the user sees.
# ---------------------------------------------------------------------------------------------


def run_cli(*args: str | Path) -> subprocess.CompletedProcess:
    """`train_fold.py` as a new process."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "code/train_fold.py", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def run_cli_here(capsys: pytest.CaptureFixture, *args: str | Path) -> subprocess.CompletedProcess:
    """`train_fold.py` through its `run_cli` wrapper in this process; what a process would give."""
    import train_fold as script

    with pytest.raises(SystemExit) as exit_info:
        script.run_cli(script.main, list(map(str, args)))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, exit_info.value.code, captured.out, captured.err)


def assert_user_error(result: subprocess.CompletedProcess, *names: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert lines and lines[-1].startswith("error: "), result.stderr
    for name in names:
        assert name in lines[-1], lines[-1]


@pytest.mark.parametrize("case", ["missing data folder", "corrupt mask"])
def test_cli_bad_data(case: str, folder: Path, tmp_path: Path, capsys) -> None:
    corrupt, expected = CASES[case]
    culprit = corrupt(folder)
    outputs = tmp_path / "outputs"
    result = run_cli_here(
        capsys,
        "--config-file",
        CONFIG,
        "--cv-currentfold",
        "0",
        "--data-folder",
        folder,
        "--outputs-folder",
        outputs,
    )
    assert_user_error(result, str(culprit), expected)
    assert not outputs.exists()


def test_cli_unwritable_outputs(folder: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    result = run_cli_here(
        capsys,
        "--config-file",
        CONFIG,
        "--cv-currentfold",
        "0",
        "--data-folder",
        folder,
        "--outputs-folder",
        blocker / "out",
    )
    assert_user_error(result, str(blocker / "out"), "not writable")
    assert blocker.is_file() and blocker.read_text() == ""


def test_cli_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "broken.json"
    config.write_text('{\n  "version": 1,\n  "stage1": {"epochs": 1,}\n}\n')
    outputs = tmp_path / "outputs"
    result = run_cli(
        "--config-file", config, "--data-folder", tmp_path / "no-data", "--outputs-folder", outputs
    )
    assert_user_error(result, str(config), "invalid JSON", "line 3")
    assert not outputs.exists()
