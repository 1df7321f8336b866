"""code/benchmarks/extra_views.py: each shifted or flipped view is moved back before averaging."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


class Identity:
    """A stand-in model whose output is its input, so a view moved back must equal the image."""

    def predict(self, x, batch_size, verbose):
        return x.copy()


@pytest.mark.parametrize("dy, dx", [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2), (1, -2)])
def test_moved_view_is_moved_back(dy, dx):
    from extra_views import moved

    x = np.random.default_rng(0).random((3, 16, 16, 1)).astype(np.float32)
    back = moved(Identity(), x, dy, dx, margin=2)
    assert back.shape == x.shape
    np.testing.assert_array_equal(back[:, 2:-2, 2:-2], x[:, 2:-2, 2:-2])
    if (dy, dx) != (0, 0):  # the view itself really moved: unmoved, it would not line up
        moved_x = np.roll(x, (dy, dx), axis=(1, 2))
        assert not np.array_equal(moved_x[:, 2:-2, 2:-2], back[:, 2:-2, 2:-2])


def test_views_average_flips_and_shifts_in_place():
    from extra_views import flip_sum, to_probs
    from tgssalt.config import resolve_config
    from tgssalt.pipeline import preprocess
    from tgssalt.sizes import to_original_size

    config = resolve_config({"input": {"size": 64, "normalize": True}})
    images = np.zeros((2, 101, 101, 1), np.uint8)
    images[:, 20:60, 5:30] = 200  # a body off the vertical axis: a wrong flip-back moves it
    x = preprocess(images, config)
    expected = to_original_size(x, config.input)
    flips = to_probs(flip_sum(Identity(), x, [(0, 0)], margin=2), 2, config)
    np.testing.assert_allclose(flips, expected, atol=1e-6)
    offsets = [(0, 0), (2, 0), (0, -2)]
    shifts = to_probs(flip_sum(Identity(), x, offsets, margin=2), 2 * len(offsets), config)
    inner = (slice(None), slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(shifts[inner], expected[inner], atol=1e-6)
