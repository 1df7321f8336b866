"""Submitting a CSV to the competition on Kaggle, after checking it as Kaggle would.

The file is validated against `sample_submission.csv` (header, unique ids, valid RLE, exactly the
test ids) before anything is uploaded, so a bad file fails here in a second rather than on
Kaggle. The `kaggle` package is imported only when uploading: checking needs no credentials, and
the tests pass a fake API object instead.
"""

import contextlib
import io
from pathlib import Path

from .competition import COMPETITION
from .data import read_ids, resolve_data_folder
from .errors import UserError, first_line
from .submission import validate_submission

CREDENTIALS_MESSAGE = (
    "no Kaggle credentials found: run `kaggle auth login`, or set KAGGLE_API_TOKEN, or save a "
    "token from https://www.kaggle.com/settings/api as ~/.kaggle/access_token (the legacy "
    "~/.kaggle/kaggle.json with username and key also works); then accept the rules on "
    f"https://www.kaggle.com/c/{COMPETITION}/rules"
)
KAGGLE_PIN = "kaggle==2.2.5"


def check_submission(path: Path, data_folder: Path) -> int:
    """Validate a submission against the data folder's `sample_submission.csv`; return its rows."""
    expected = read_ids(resolve_data_folder(data_folder) / "sample_submission.csv")
    return len(validate_submission(path, expected))


def kaggle_api():
    """An authenticated `KaggleApi`; a `UserError` when `kaggle` or the credentials are missing.

    `kaggle` prints its own help and calls `exit(1)` when it finds no credentials (its package
    import even tries to authenticate): both are silenced here and replaced by one message.
    """
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError:
        raise UserError(f"the kaggle package is not installed: pip install {KAGGLE_PIN}") from None
    api = KaggleApi()
    try:
        with contextlib.redirect_stdout(quiet):
            api.authenticate()
    except SystemExit:
        raise UserError(CREDENTIALS_MESSAGE) from None
    return api


def upload(path: Path, message: str, api=None, competition: str = COMPETITION) -> str:
    """Upload a (checked) submission file; return Kaggle's reply.

    `api` is anything with the `KaggleApi.competition_submit(file, message, competition)`
    method; by default an authenticated `KaggleApi`.
    """
    api = kaggle_api() if api is None else api
    try:
        reply = api.competition_submit(str(path), message, competition)
    except SystemExit:
        raise UserError(CREDENTIALS_MESSAGE) from None
    except Exception as exc:  # the client raises HTTP and connection errors of several types
        raise UserError(
            f"Kaggle refused the submission of {path} ({first_line(exc)}); check the "
            f"credentials and that the rules of {competition} are accepted"
        ) from None
    text = str(getattr(reply, "message", reply) or "")
    if text.startswith("Could not submit"):
        raise UserError(f"Kaggle upload of {path} failed: {text}")
    return text


def submit(
    path: Path, message: str, data_folder: Path, api=None, dry_run: bool = False
) -> str | None:
    """Check `path` against the sample submission, then upload it unless `dry_run`."""
    rows = check_submission(Path(path), data_folder)
    print(f"{path}: valid submission, {rows} rows")
    if dry_run:
        print("dry run: nothing uploaded")
        return None
    api = kaggle_api() if api is None else api
    reply = upload(Path(path), message, api)
    print(f"submitted to {COMPETITION}: {reply or 'ok'}")
    status = latest_status(api)
    if status:
        print(f"latest submission: {status}")
    print(f"scores appear on https://www.kaggle.com/c/{COMPETITION}/submissions")
    return reply


def latest_status(api, competition: str = COMPETITION) -> str | None:
    """The newest submission's status (and scores once Kaggle has them); None if unavailable."""
    try:
        submissions = api.competition_submissions(competition)
    except (Exception, SystemExit):  # the listing is a courtesy: never fail an upload over it
        return None
    if not submissions:
        return None
    latest = submissions[0]
    fields = [
        ("status", "status"),
        ("public_score", "public score"),
        ("private_score", "private score"),
    ]
    parts = [
        f"{label} {getattr(latest, name)}"
        for name, label in fields
        if getattr(latest, name, None) not in (None, "")
    ]
    return ", ".join(parts) or None
