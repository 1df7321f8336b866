"""Property-based tests (hypothesis): hostile or random RLE strings and submission files either
parse to something valid or fail with a one-line `UserError`, never another exception."""

import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tgssalt.errors import UserError
from tgssalt.rle import parse_rle, rle_decode, rle_encode
from tgssalt.submission import validate_submission

N_PIXELS = 101 * 101
TOKENS = st.one_of(
    st.integers(-5, N_PIXELS + 5).map(str),
    st.sampled_from(
        ["", "0", "-1", "1.5", "1e3", "nan", "inf", "0x10", "٣", "99999999999999999999"]
    ),
    st.text(string.printable, max_size=4),
)
RLE_TEXT = st.one_of(
    st.lists(TOKENS, max_size=12).map(" ".join),
    st.text(max_size=40),
)


@settings(max_examples=400, deadline=None)
@given(RLE_TEXT)
def test_any_rle_string_is_parsed_or_refused_cleanly(rle: str) -> None:
    try:
        runs = parse_rle(rle)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    starts, lengths = runs[:, 0], runs[:, 1]
    assert (starts >= 0).all() and (lengths >= 1).all() and (starts + lengths <= N_PIXELS).all()
    assert (starts[1:] >= (starts + lengths)[:-1]).all()
    mask = rle_decode(rle)
    assert mask.sum() == lengths.sum()
    assert np.array_equal(rle_decode(rle_encode(mask)), mask)  # re-encoding is canonical


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 200), st.integers(1, 60)), max_size=20))
def test_valid_runs_decode_to_their_pixels(gaps_and_lengths: list) -> None:
    """Runs built to be valid (ascending, gaps >= 1) are accepted and decode to exactly them."""
    flat, pairs, position = np.zeros(N_PIXELS, np.uint8), [], 0
    for gap, length in gaps_and_lengths:
        start = position + gap
        if start + length > N_PIXELS:
            break
        flat[start : start + length] = 1
        pairs.append(f"{start + 1} {length}")
        position = start + length
    mask = rle_decode(" ".join(pairs))
    assert np.array_equal(mask.flatten(order="F"), flat)
    assert rle_encode(mask) == " ".join(pairs)


CELL = st.one_of(RLE_TEXT, st.sampled_from(["a1", "../x", "id,with,commas", '"q"', "\t"]))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.sampled_from(["id,rle_mask", "id,rle", "rle_mask,id", "id", ""]),
    rows=st.lists(st.tuples(CELL, CELL), max_size=6),
    raw_tail=st.text(max_size=30),
)
def test_any_submission_file_is_validated_or_refused_cleanly(
    tmp_path: Path, header: str, rows: list, raw_tail: str
) -> None:
    path = tmp_path / "sub.csv"
    body = "".join(f"{a},{b}\n" for a, b in rows)
    path.write_text(f"{header}\n{body}{raw_tail}", encoding="utf-8")
    try:
        frame = validate_submission(path)
    except UserError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    assert list(frame.columns) == ["id", "rle_mask"]
    assert frame["id"].is_unique and (frame["id"] != "").all()
    for rle in frame["rle_mask"]:
        parse_rle(rle)


@pytest.mark.parametrize("ids", [["a", "b"], ["x"]])
def test_validator_expected_ids_property_holds_for_a_written_file(tmp_path: Path, ids) -> None:
    path = tmp_path / "s.csv"
    pd.DataFrame({"id": ids, "rle_mask": ["1 3"] * len(ids)}).to_csv(path, index=False)
    assert validate_submission(path, expected_ids=ids)["id"].tolist() == ids
    with pytest.raises(UserError, match=str(path)):
        validate_submission(path, expected_ids=[*ids, "missing"])
