"""Tests for the synthetic data generator and its script: layout, RLE, determinism, mix, CLI."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from tgssalt.competition import IMAGE_SIZE
from tgssalt.errors import UserError
from tgssalt.rle import rle_decode
from tgssalt.synthetic import coverage_band, generate_dataset, make_ids, make_sample

SCRIPT = Path(__file__).resolve().parents[1] / "make_synthetic_data.py"
N_TRAIN, N_TEST = 300, 40


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One data set of N_TRAIN + N_TEST images, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("synthetic")
    return out, generate_dataset(out, n_train=N_TRAIN, n_test=N_TEST, seed=0)


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV keeping empty cells as "" (not NaN), so empty masks compare as strings."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def pngs(folder: Path) -> set[str]:
    """The ids of the PNG files in `folder`."""
    return {p.stem for p in folder.glob("*.png")}


def test_make_sample_shapes_and_values() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        image, mask = make_sample(rng)
        assert image.shape == mask.shape == (IMAGE_SIZE, IMAGE_SIZE)
        assert image.dtype == mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1}
        assert image.std() > 5  # not a blank image


def test_make_ids_are_distinct_hex() -> None:
    ids = make_ids(np.random.default_rng(0), 500)
    assert len(set(ids)) == 500
    assert all(len(i) == 10 and int(i, 16) >= 0 and i == i.lower() for i in ids)


def test_layout_and_csvs_agree(dataset: tuple[Path, dict]) -> None:
    out, counts = dataset
    assert counts["train"] == N_TRAIN and counts["test"] == N_TEST
    train, depths, sample = (
        read_csv(out / name) for name in ("train.csv", "depths.csv", "sample_submission.csv")
    )
    assert list(train.columns) == ["id", "rle_mask"] and len(train) == N_TRAIN
    assert set(train.id) == pngs(out / "train" / "images") == pngs(out / "train" / "masks")
    assert list(sample.columns) == ["id", "rle_mask"] and (sample.rle_mask == "1 1").all()
    assert set(sample.id) == pngs(out / "test" / "images") and len(sample) == N_TEST
    assert list(depths.columns) == ["id", "z"]
    assert set(depths.id) == set(train.id) | set(sample.id) and len(depths) == N_TRAIN + N_TEST
    z = depths.z.astype(int)
    assert z.between(50, 960).all() and z.nunique() > 50


def test_images_are_rgb_with_equal_channels(dataset: tuple[Path, dict]) -> None:
    out, _ = dataset
    for path in [
        *(out / "train" / "images").glob("*.png"),
        *(out / "test" / "images").glob("*.png"),
    ]:
        with Image.open(path) as image:
            assert image.mode == "RGB" and image.size == (IMAGE_SIZE, IMAGE_SIZE)
            array = np.asarray(image)
        assert array.dtype == np.uint8
        assert (array[:, :, 0] == array[:, :, 1]).all() and (array[:, :, 0] == array[:, :, 2]).all()


def test_rle_decodes_to_the_mask_pngs(dataset: tuple[Path, dict]) -> None:
    out, _ = dataset
    for row in read_csv(out / "train.csv").itertuples():
        with Image.open(out / "train" / "masks" / f"{row.id}.png") as image:
            assert image.mode == "L"
            mask = np.asarray(image)
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(rle_decode(row.rle_mask), mask // 255)
        assert (row.rle_mask == "") == (mask.max() == 0)


def test_coverage_mix(dataset: tuple[Path, dict]) -> None:
    out, counts = dataset
    coverages = [
        np.asarray(Image.open(p)).mean() / 255 for p in (out / "train" / "masks").glob("*.png")
    ]
    classes = [coverage_band(c) for c in coverages]
    for name in ("empty", "small", "medium", "large", "full"):
        assert classes.count(name) == counts[name]
    assert 0.32 <= counts["empty"] / N_TRAIN <= 0.48
    assert counts["full"] >= 3 and counts["small"] >= 20
    assert counts["medium"] >= 20 and counts["large"] >= 20


def file_bytes(out: Path) -> dict[str, bytes]:
    """Every file under `out`, by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_dataset(tmp_path / name, n_train=12, n_test=4, seed=seed)
        runs[name] = file_bytes(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert len(runs["a"]) == 12 * 2 + 4 + 3
    assert runs["a"]["train.csv"] != runs["c"]["train.csv"]
    assert set(runs["a"]).isdisjoint(k for k in runs["c"] if k.endswith(".png"))


def test_example_does_not_depend_on_set_size(tmp_path: Path, dataset: tuple[Path, dict]) -> None:
    out, _ = dataset
    generate_dataset(tmp_path, n_train=5, n_test=0, seed=0)
    small_ids = read_csv(tmp_path / "train.csv").id
    assert list(small_ids) == list(read_csv(out / "train.csv").id[:5])
    for i in small_ids:
        path = Path("train") / "images" / f"{i}.png"
        assert (tmp_path / path).read_bytes() == (out / path).read_bytes()


def test_refuses_existing_data_set_unless_overwrite(tmp_path: Path) -> None:
    generate_dataset(tmp_path, n_train=4, n_test=2, seed=0)
    with pytest.raises(UserError, match="already holds"):
        generate_dataset(tmp_path, n_train=3, n_test=1, seed=1)
    generate_dataset(tmp_path, n_train=3, n_test=1, seed=1, overwrite=True)
    assert len(pngs(tmp_path / "train" / "images")) == 3  # the old set's PNGs are gone
    assert len(pngs(tmp_path / "test" / "images")) == 1


def run_script(*args: str) -> subprocess.CompletedProcess:
    """Run the script from another working directory, as a user would."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd="/", timeout=60
    )


def test_script_writes_a_data_set(tmp_path: Path) -> None:
    result = run_script(
        "--out", str(tmp_path / "data"), "--train", "6", "--test", "3", "--seed", "2"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "6 train + 3 test" in lines[0] and "empty" in lines[0]
    assert len(read_csv(tmp_path / "data" / "train.csv")) == 6


@pytest.mark.parametrize("case", ["negative", "file", "under_file", "existing", "bad_int"])
def test_script_bad_args_exit_2_with_one_line(tmp_path: Path, case: str) -> None:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    generate_dataset(tmp_path / "existing", n_train=1, n_test=1)
    args = {
        "negative": ["--out", str(tmp_path / "new"), "--train", "-1"],
        "file": ["--out", str(a_file)],
        "under_file": ["--out", str(a_file / "sub")],
        "existing": ["--out", str(tmp_path / "existing")],
        "bad_int": ["--out", str(tmp_path / "new"), "--test", "many"],
    }[case]
    result = run_script(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert not (tmp_path / "new").exists()
