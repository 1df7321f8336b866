"""code/benchmarks/headroom.py: each oracle on hand-made masks whose scores are known."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def square(top: int, left: int, side: int, size: int = 20) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[top : top + side, left : left + side] = 1
    return mask


def test_empty_oracle_empties_only_where_that_scores_more():
    from headroom import empty_oracle

    truth = np.stack([np.zeros((20, 20), np.uint8), square(2, 2, 10)])
    masks = np.stack([square(15, 15, 2), square(2, 2, 10)])  # a false speck; a perfect mask
    np.testing.assert_allclose(empty_oracle(truth, masks), [1.0, 1.0])
    np.testing.assert_allclose(empty_oracle(truth, np.zeros_like(truth)), [1.0, 0.0])


def test_body_oracle_drops_a_false_body_and_keeps_a_partly_salt_one():
    from headroom import body_oracle, salt_bodies

    truth = square(2, 2, 10)[None]
    masks = (square(2, 2, 10) | square(15, 15, 3))[None]  # IoU 100 / 109: 9 thresholds of 10
    from tgssalt.metrics import image_scores

    np.testing.assert_allclose(image_scores(truth, masks), [0.9])
    np.testing.assert_array_equal(salt_bodies(truth, masks), truth.astype(bool))
    np.testing.assert_allclose(body_oracle(truth, masks), [1.0])
    # one body 40% salt (rows 0-9, salt in rows 0-3): dropping it would score 0, so it stays
    truth = np.zeros((1, 20, 20), np.uint8)
    truth[0, :4, :10] = 1
    masks = square(0, 0, 10)[None]
    assert not salt_bodies(truth, masks).any()
    np.testing.assert_allclose(body_oracle(truth, masks), image_scores(truth, masks))


def test_threshold_oracle_takes_each_images_best_threshold():
    from headroom import threshold_oracle

    truth = np.stack([square(2, 2, 10), np.zeros((20, 20), np.uint8)])
    probs = np.stack([0.3 * square(2, 2, 10), 0.3 * square(15, 15, 2)]).astype(np.float32)
    rule = {"threshold": 0.2, "min_area": 0, "peak_threshold": None}
    np.testing.assert_allclose(threshold_oracle(truth, probs, rule, [0.2]), [1.0, 0.0])
    np.testing.assert_allclose(threshold_oracle(truth, probs, rule, [0.4]), [0.0, 1.0])
    np.testing.assert_allclose(threshold_oracle(truth, probs, rule, [0.2, 0.4]), [1.0, 1.0])
    # the rule's min area applies at every threshold: 5 px empties the speck at 0.2 too
    rule = {"threshold": 0.2, "min_area": 5, "peak_threshold": None}
    np.testing.assert_allclose(threshold_oracle(truth, probs, rule, [0.2]), [1.0, 1.0])


def test_every_oracle_scores_each_image_at_least_as_the_tuned_rule():
    from headroom import headroom

    rng = np.random.default_rng(0)
    salt = [square(*rng.integers(0, 12, 2), 6) for _ in range(6)]
    truth = np.stack(salt + [np.zeros((20, 20), np.uint8)] * 3)
    # the empty images hold a false body as sure and as large as the true ones
    seen = np.stack(salt + [square(*rng.integers(0, 12, 2), 6) for _ in range(3)])
    probs = np.clip(0.8 * seen + rng.normal(0.0, 0.1, seen.shape), 0, 1).astype(np.float32)
    found = headroom(truth, probs, np.linspace(0.2, 0.8, 7), np.array([0, 5]))
    assert set(found["rule"]) == {"threshold", "min_area", "peak_threshold"}
    rule = found["scores"]["rule"]
    for name in ("empty_oracle", "body_oracle", "threshold_oracle"):
        assert (found["scores"][name] >= rule - 1e-12).all(), name
    np.testing.assert_allclose(rule[6:], 0.0)  # no rule tells the false bodies from the true
    np.testing.assert_allclose(found["scores"]["empty_oracle"][6:], 1.0)


def test_unseen_salt_has_no_probability_above_the_threshold_inside_it():
    from headroom import unseen

    truth = np.stack([square(2, 2, 4), square(2, 2, 4), np.zeros((20, 20), np.uint8)])
    probs = np.stack([0.1 * square(2, 2, 4), 0.3 * square(3, 3, 2), 0.9 * square(9, 9, 4)])
    probs[0, 15:, 15:] = 0.9  # sure salt outside the true body does not count
    np.testing.assert_array_equal(unseen(truth, probs.astype(np.float32), 0.2), [1, 0, 0])


def test_weights_are_given_or_equal_and_a_search_rule_is_refused():
    from headroom import member_weights
    from tgssalt.errors import UserError

    np.testing.assert_allclose(member_weights(None, 2), [0.5, 0.5])
    np.testing.assert_allclose(member_weights("1,3", 2), [0.25, 0.75])
    with pytest.raises(UserError, match="--weights tuned"):
        member_weights("tuned", 2)
