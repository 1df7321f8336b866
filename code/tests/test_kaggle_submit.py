"""Kaggle submission: the file is checked before any upload, and upload failures are one line.

Nothing here reaches Kaggle: uploads go to a fake API object.
"""

import builtins
import subprocess
import sys
from pathlib import Path

import pytest
from tgssalt import kaggle_submit
from tgssalt.competition import COMPETITION
from tgssalt.errors import UserError
from tgssalt.kaggle_submit import CREDENTIALS_MESSAGE, kaggle_api, submit, upload

CODE = Path(__file__).resolve().parents[1]


class FakeApi:
    """Records uploads; replies like `KaggleApi.competition_submit` or raises `error`."""

    def __init__(self, error: BaseException | None = None, message: str = "Successfully submitted"):
        self.calls, self.error, self.message = [], error, message

    def competition_submit(self, file_name, message, competition):
        self.calls.append((file_name, message, competition))
        if self.error is not None:
            raise self.error
        return type("Reply", (), {"message": self.message})()

    def competition_submissions(self, competition):
        self.calls.append(("list", competition))
        latest = {"status": "SubmissionStatus.COMPLETE", "public_score": "0.8123"}
        return [type("Submission", (), latest)()]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data folder with train.csv and a three-id sample submission."""
    (tmp_path / "train.csv").write_text("id,rle_mask\nx,\n")
    (tmp_path / "sample_submission.csv").write_text("id,rle_mask\na,1 1\nb,1 1\nc,1 1\n")
    return tmp_path


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sub.csv"
    path.write_text("id,rle_mask\n" + body)
    return path


def test_good_file_is_uploaded(tmp_path, data, capsys):
    api = FakeApi()
    reply = submit(_csv(tmp_path, "c,\nb,5 3\na,1 1\n"), "first try", data, api=api)
    assert reply == "Successfully submitted"
    assert api.calls == [
        (str(tmp_path / "sub.csv"), "first try", COMPETITION),
        ("list", COMPETITION),
    ]
    out = capsys.readouterr().out
    assert "valid submission, 3 rows" in out
    assert "latest submission: status SubmissionStatus.COMPLETE" in out


def test_dry_run_uploads_nothing(tmp_path, data):
    api = FakeApi()
    assert submit(_csv(tmp_path, "a,\nb,\nc,\n"), "m", data, api=api, dry_run=True) is None
    assert api.calls == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("a,\nb,\n", "1 expected id(s) missing ('c')"),
        ("a,\nb,\nc,\nd,\n", "1 unexpected id(s) ('d')"),
        ("a,\nb,\nc,1 x\n", "id 'c': RLE has a non-integer"),
        ("a,\na,\nc,\n", "duplicate"),
    ],
)
def test_bad_file_is_never_uploaded(tmp_path, data, body, fragment):
    api = FakeApi()
    with pytest.raises(UserError, match="sub.csv") as error:
        submit(_csv(tmp_path, body), "m", data, api=api)
    assert fragment in str(error.value) and api.calls == []


def test_upload_errors_become_one_line(tmp_path):
    path = _csv(tmp_path, "a,\n")
    with pytest.raises(UserError, match=r"refused.*\(403 Forbidden\).*rules"):
        upload(path, "m", FakeApi(RuntimeError("403 Forbidden\nlong body")))
    with pytest.raises(UserError, match="no Kaggle credentials"):
        upload(path, "m", FakeApi(SystemExit(1)))
    with pytest.raises(UserError, match="upload of .* failed: Could not submit"):
        upload(path, "m", FakeApi(message="Could not submit to competition"))


def test_missing_credentials_give_the_credentials_message(monkeypatch, capsys):
    class NoCredentials:
        def authenticate(self):
            print("kaggle's own multi-line help")
            sys.exit(1)

    module = type(sys)("kaggle.api.kaggle_api_extended")
    module.KaggleApi = NoCredentials
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", module)
    with pytest.raises(UserError) as error:
        kaggle_api()
    assert str(error.value) == CREDENTIALS_MESSAGE and "kaggle auth login" in CREDENTIALS_MESSAGE
    assert capsys.readouterr().out == ""


def test_missing_kaggle_package(monkeypatch):
    real_import = builtins.__import__

    def no_kaggle(name, *args, **kwargs):
        if name.startswith("kaggle"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kaggle)
    with pytest.raises(UserError, match=f"pip install {kaggle_submit.KAGGLE_PIN}"):
        kaggle_api()


def test_cli_dry_run_and_error(tmp_path, data):
    script = [sys.executable, str(CODE / "submit_kaggle.py")]
    good = _csv(tmp_path, "a,\nb,\nc,\n")
    done = subprocess.run(
        [*script, str(good), "--dry-run", "--data-folder", str(data)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "dry run: nothing uploaded" in done.stdout
    done = subprocess.run(
        [*script, str(tmp_path / "absent.csv"), "--data-folder", str(data)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (
        done.returncode == 2 and done.stderr == f"error: {tmp_path / 'absent.csv'}: no such file\n"
    )


def test_submit_reports_the_latest_status(tmp_path, capsys):
    from tgssalt.kaggle_submit import latest_status

    api = FakeApi()
    assert latest_status(api) == "status SubmissionStatus.COMPLETE, public score 0.8123"

    class Broken:
        def competition_submissions(self, competition):
            raise RuntimeError("listing down")

    assert latest_status(Broken()) is None
