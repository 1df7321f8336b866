"""Submission files: validation messages, atomic writing, truth reading, and the scoring CLI."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tgssalt.errors import UserError, run_cli
from tgssalt.rle import rle_encode
from tgssalt.submission import read_truth, validate_submission, write_submission

CODE_DIR = Path(__file__).resolve().parents[1]
SCRIPT = CODE_DIR / "score_submission.py"
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "tgs"


def _random_masks(n: int, seed: int = 0) -> np.ndarray:
    """n competition-sized masks, a third of them empty, the rest random rectangles."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, 101, 101), np.uint8)
    for i in range(n):
        if i % 3:
            top, left, h, w = rng.integers(0, 90, 4)
            masks[i, top : top + h + 1, left : left + w + 1] = 1
    return masks


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def good_csv(tmp_path: Path) -> Path:
    return _write(tmp_path / "good.csv", "id,rle_mask\naaa,1 5 200 3\nbbb,\nccc,10201 1\n")


def test_validator_accepts_good_file(good_csv: Path) -> None:
    df = validate_submission(good_csv, expected_ids=["ccc", "bbb", "aaa"])
    assert list(df["id"]) == ["aaa", "bbb", "ccc"]
    assert list(df["rle_mask"]) == ["1 5 200 3", "", "10201 1"]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("id,mask\naaa,1 1\n", ["header", "'id,mask'"]),
        ("rle_mask,id\n1 1,aaa\n", ["header"]),
        ("id,rle_mask,extra\naaa,1 1,x\n", ["header"]),
        ("id,rle_mask\naaa,1 1\nbbb,\naaa,3 1\n", ["duplicate", "'aaa'"]),
        ("id,rle_mask\naaa,1 1\n,3 1\n", ["empty id", "line 3"]),
        ("id,rle_mask\naaa,1 1\nbbb,5 2 3 1\n", ["'bbb'", "ascending"]),
        ("id,rle_mask\nbbb,10201 2\n", ["'bbb'", "past"]),
        ("id,rle_mask\nbbb,1 x\n", ["'bbb'", "non-integer"]),
        ("id,rle_mask\nbbb,1 2 3\n", ["'bbb'", "odd"]),
        ("", ["not a readable CSV"]),
        ('id,rle_mask\naaa,"1 1\n', ["not a readable CSV"]),
    ],
)
def test_validator_rejects_with_file_and_reason(tmp_path: Path, text: str, fragments: list):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(UserError) as info:
        validate_submission(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_validator_id_set(good_csv: Path) -> None:
    with pytest.raises(UserError, match=r"good\.csv: 2 expected id\(s\) missing \('ddd', 'eee'\)"):
        validate_submission(good_csv, expected_ids=["aaa", "bbb", "ccc", "ddd", "eee"])
    with pytest.raises(UserError, match=r"1 unexpected id\(s\) \('ccc'\)"):
        validate_submission(good_csv, expected_ids=["aaa", "bbb"])
    validate_submission(good_csv, expected_ids=["aaa", "bbb"], allow_extra=True)


def test_validator_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope.csv: no such file"):
        validate_submission(tmp_path / "nope.csv")


def test_write_submission_is_ordered_atomic_and_validated(tmp_path: Path) -> None:
    masks = _random_masks(6)
    ids = [f"id{i}" for i in (5, 3, 1, 0, 2, 4)]
    mixed = [masks[0], masks[1][..., None], rle_encode(masks[2]), *masks[3:]]
    target = tmp_path / "out" / "submission.csv"
    write_submission(target, ids, mixed)
    assert [p.name for p in target.parent.iterdir()] == ["submission.csv"]  # no temp files
    df = pd.read_csv(target, keep_default_na=False, dtype=str)
    assert list(df["id"]) == ids
    assert list(df["rle_mask"]) == [rle_encode(m) for m in masks]
    truth = read_truth(target)
    for image_id, mask in zip(ids, masks, strict=True):
        np.testing.assert_array_equal(truth[image_id], mask)


def test_write_submission_invalid_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "submission.csv"
    with pytest.raises(UserError, match="duplicate"):
        write_submission(target, ["a", "a"], ["", "1 1"])
    with pytest.raises(UserError, match="'b'"):
        write_submission(target, ["a", "b"], ["", "0 1"])
    with pytest.raises(UserError, match="2 ids but 1 masks"):
        write_submission(target, ["a", "b"], [""])
    with pytest.raises(UserError, match="shape"):
        write_submission(target, ["a"], [np.zeros((128, 128))])
    assert list(tmp_path.iterdir()) == []


def _synthetic_truth(folder: Path) -> Path:
    """A truth CSV in the competition's format: 30 images, a third of them empty."""
    truth = folder / "truth.csv"
    write_submission(truth, [f"{i:010x}" for i in range(30)], _random_masks(30, seed=3))
    return truth


def _empty_submission(truth: Path, target: Path) -> tuple[Path, str]:
    """An all-empty submission for `truth`, and its expected score: the fraction of empty truths."""
    df = pd.read_csv(truth, keep_default_na=False, dtype=str)
    write_submission(target, list(df["id"]), [""] * len(df))
    return target, f"{(df['rle_mask'] == '').mean():.6f}"


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """End-to-end runs of the script from another cwd, started together (each pays Python and
    Keras start-up): perfect and all-empty submissions of the real train.csv (a synthetic truth
    when the real data is absent), and one bad RLE. Returns {name: (rc, stdout, stderr, want)}."""
    folder = tmp_path_factory.mktemp("cli")
    truth = DATA / "train.csv" if (DATA / "train.csv").is_file() else _synthetic_truth(folder)
    empty, empty_score = _empty_submission(truth, folder / "empty.csv")
    bad = _write(folder / "bad_rle.csv", truth.read_text() + "yyyyyyyyyy,4 4 2 1\n")
    cases = {"perfect": (truth, "1.000000"), "empty": (empty, empty_score), "bad-rle": (bad, "")}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(SCRIPT), str(sub), "--truth", str(truth)],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (sub, _) in cases.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = (proc.returncode, out, err, cases[name][1])
    return results


@pytest.mark.parametrize("case", ["perfect", "empty"])
def test_cli_end_to_end_scores(cli_runs: dict, case: str) -> None:
    code, out, err, expected = cli_runs[case]
    assert code == 0, err
    assert out.splitlines()[-1] == expected, out


def test_cli_end_to_end_bad_input(cli_runs: dict) -> None:
    code, out, err, _ = cli_runs["bad-rle"]
    assert code == 2, (out, err)
    assert "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()], err
    assert err.startswith("error: ") and "bad_rle.csv: id 'yyyyyyyyyy'" in err, err


@pytest.fixture
def script_main(monkeypatch: pytest.MonkeyPatch) -> object:
    """The script's `main`, imported in-process; the environment it sets is restored after."""
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "tensorflow"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("score_submission_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _run_script(main: object, capsys: pytest.CaptureFixture, *argv: object) -> tuple:
    """Run the script's main through `run_cli`; return (exit code, stdout, stderr)."""
    try:
        run_cli(main, [str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_in_process_scores_and_extra_ids(script_main, capsys, tmp_path: Path) -> None:
    truth = _synthetic_truth(tmp_path)
    empty, empty_score = _empty_submission(truth, tmp_path / "empty.csv")
    assert _run_script(script_main, capsys, truth, "--truth", truth)[1].endswith("\n1.000000\n")
    assert _run_script(script_main, capsys, empty, "--truth", truth)[1].splitlines()[-1] == (
        empty_score
    )
    extra = _write(tmp_path / "extra.csv", truth.read_text() + "zzzzzzzzzz,1 1\n")
    code, out, _ = _run_script(script_main, capsys, extra, "--truth", truth)
    assert code == 0 and "ignoring 1 submission id(s)" in out
    assert out.splitlines()[-1] == "1.000000"


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing-file", "nope.csv: no such file"),
        ("bad-header", "hdr.csv: header"),
        ("missing-id", "short.csv: 1 expected id(s) missing"),
        ("binary", "bin.csv: not a readable CSV"),
        ("bad-truth", "truth.csv: id 'x'"),
    ],
)
def test_cli_in_process_bad_input(script_main, capsys, tmp_path: Path, case: str, fragment: str):
    truth = _synthetic_truth(tmp_path)
    (tmp_path / "bin.csv").write_bytes(bytes(range(256)) * 4)
    short = "\n".join(truth.read_text().splitlines()[:-1]) + "\n"
    submissions = {
        "missing-file": tmp_path / "nope.csv",
        "bad-header": _write(tmp_path / "hdr.csv", "id;rle_mask\n"),
        "missing-id": _write(tmp_path / "short.csv", short),
        "binary": tmp_path / "bin.csv",
        "bad-truth": truth,
    }
    if case == "bad-truth":
        _write(truth, "id,rle_mask\nx,3 1 1 1\n")
    code, out, err = _run_script(script_main, capsys, submissions[case], "--truth", truth)
    assert code == 2, (out, err)
    assert err.strip().splitlines() == [err.strip()] and err.startswith("error: "), err
    assert fragment in err, err
