"""Synthetic TGS-like data: seismic-looking 101x101 images with salt masks, in Kaggle's layout.

Lets the pipeline (loading, training, scoring, submitting) run end to end without the real
competition data. Images are layered, folded and sometimes faulted sediment with band-limited
noise; salt bodies are smooth blobs or domes whose interior is chaotic, lower-amplitude and weakly
layered, sometimes outlined by a bright top reflector. The mask is exactly where the salt texture
is. Sediment and salt differ only moderately, and some bodies are faint or small, so a small U-Net
learns the task well above the all-empty baseline without solving it perfectly.

Layout written by `generate_dataset(out)`, as Kaggle's:
`train/images/<id>.png` (RGB, three equal channels), `train/masks/<id>.png` (grayscale 0/255),
`test/images/<id>.png`, `train.csv` (id,rle_mask), `depths.csv` (id,z) and
`sample_submission.csv` (id,rle_mask with "1 1" in every row).
"""

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from .atomic import write_text
from .competition import IMAGE_SIZE
from .data import IMAGE_FOLDERS, LAYOUT_CSVS, TEST_IMAGES, TRAIN_IMAGES, TRAIN_MASKS
from .errors import UserError
from .rle import rle_encode

N = IMAGE_SIZE
# Coverage classes a mask is drawn from: (name, probability, lowest, highest coverage).
COVERAGE_BANDS = (
    ("empty", 0.40, 0.0, 0.0),
    ("small", 0.17, 0.005, 0.10),
    ("medium", 0.20, 0.10, 0.50),
    ("large", 0.18, 0.50, 0.97),
    ("full", 0.05, 1.0, 1.0),
)
DEPTH_RANGE = (51, 960)  # feet, as Kaggle's depths.csv
NOISE_GRID = 128  # side of the periodic grid wide smooth noise is made on (cropped to N)
# Squared spatial frequencies (cycles per pixel) of that grid's rows and of its rfft columns.
_FREQ_Y2 = np.fft.fftfreq(NOISE_GRID).astype(np.float32)[:, None] ** 2
_FREQ_X2 = np.fft.rfftfreq(NOISE_GRID).astype(np.float32)[None, :] ** 2
SERIES_LENGTH = 400  # samples in the 1-D reflectivity series the layers are cut from
SERIES_OFFSET = 150  # where image row 0 sits in that series, leaving room for folds and faults
LAYOUT_ENTRIES = (*LAYOUT_CSVS, "train", "test")


# ---------------------------------------------------------------------------------------------
# One image: sediment, salt, mix.
# ---------------------------------------------------------------------------------------------


def _phase(rng: np.random.Generator) -> float:
    """A random phase in [0, 2 pi), for the sinusoids in folds, chirps and dome tops."""
    return float(rng.uniform(0, 2 * np.pi))


def _ricker(period: float) -> np.ndarray:
    """A Ricker wavelet with the given dominant period (pixels): seismic's usual source pulse."""
    t = np.arange(-int(2 * period), int(2 * period) + 1) / period
    a = (np.pi * t) ** 2
    return (1 - 2 * a) * np.exp(-a)


def _trace(rng: np.random.Generator, period: float) -> np.ndarray:
    """A 1-D seismic trace: sparse reflectivity convolved with a wavelet, plus a chirp.

    The chirp (a sinusoid whose frequency drifts with depth) gives the regular banding of
    well-layered sediment; the sparse spikes give individual strong reflectors.
    """
    spikes = rng.laplace(size=SERIES_LENGTH) * (rng.random(SERIES_LENGTH) < 0.35)
    trace = np.convolve(spikes, _ricker(period), mode="same")
    depth = np.arange(SERIES_LENGTH)
    drift = period * (1 + 0.4 * np.sin(2 * np.pi * depth / rng.uniform(80, 300) + _phase(rng)))
    phase = np.cumsum(2 * np.pi / drift) + _phase(rng)
    trace = trace / (trace.std() + 1e-9) + rng.uniform(0.1, 0.7) * np.sin(phase)
    return trace / trace.std()


def _smooth_noise(rng: np.random.Generator, sigma: float | tuple[float, float]) -> np.ndarray:
    """Gaussian noise smoothed with `sigma` (rows, columns) and scaled to unit standard deviation.

    Narrow filters run in space. Wide ones draw random Fourier coefficients only for the low
    frequencies the Gaussian lets through (beyond 0.6 / sigma cycles per pixel its gain is below
    1e-3) on a periodic grid that is then cropped: a few hundred random numbers instead of tens of
    thousands, and a cost that does not grow with `sigma`.
    """
    sigma_y, sigma_x = np.broadcast_to(np.asarray(sigma, dtype=np.float32), (2,))
    if max(sigma_y, sigma_x) <= 3:
        noise = rng.standard_normal((N, N), dtype=np.float32)
        field = ndimage.gaussian_filter(noise, (sigma_y, sigma_x), mode="reflect")
        return (field - field.mean()) / (field.std() + 1e-9)
    cut_y, cut_x = (min(NOISE_GRID // 2, int(0.6 / s * NOISE_GRID) + 1) for s in (sigma_y, sigma_x))
    rows = np.r_[0:cut_y, NOISE_GRID - cut_y + 1 : NOISE_GRID]
    gain = np.exp(-2 * np.pi**2 * (sigma_y**2 * _FREQ_Y2[rows] + sigma_x**2 * _FREQ_X2[:, :cut_x]))
    coefficients = rng.standard_normal((2, len(rows), cut_x), dtype=np.float32)
    spectrum = np.zeros((NOISE_GRID, NOISE_GRID // 2 + 1), dtype=np.complex64)
    spectrum[rows, :cut_x] = (coefficients[0] + 1j * coefficients[1]) * gain
    field = np.fft.irfft2(spectrum, s=(NOISE_GRID, NOISE_GRID))[:N, :N]
    return (field - field.mean()) / (field.std() + 1e-9)


def _fold(rng: np.random.Generator, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Vertical displacement of the layers: smooth folds along x growing with depth, plus dip."""
    shift = np.zeros(N)
    for _ in range(rng.integers(1, 4)):
        wavelength, amplitude = rng.uniform(60, 400), rng.uniform(0, 10)
        shift += amplitude * np.sin(2 * np.pi * x[0] / wavelength + _phase(rng))
    shift += rng.normal(0, 0.15) * x[0]
    growth = 1 + rng.uniform(-0.5, 0.8) * y / N
    wobble = rng.uniform(0, 2.5) * _smooth_noise(rng, (6, 12))
    return shift[None, :] * growth + wobble


def _fault(rng: np.random.Generator, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Offset of the layers across one steep dipping fault line (zero everywhere if no fault)."""
    if rng.random() > 0.35:
        return np.zeros((N, N))
    angle = rng.uniform(np.radians(-35), np.radians(35))  # from vertical
    x0 = rng.uniform(15, N - 15)
    side = (x - x0) * np.cos(angle) - (y - N / 2) * np.sin(angle) > 0
    return side * rng.choice([-1, 1]) * rng.uniform(4, 22)


def _sediment(rng: np.random.Generator) -> np.ndarray:
    """Layered, folded, sometimes faulted sediment, unit-scale amplitude.

    Reflectors fade in and out along x (a smooth amplitude field), as real ones do.
    """
    y, x = np.mgrid[0:N, 0:N].astype(float)
    depth = y + _fold(rng, y, x) + _fault(rng, y, x) + SERIES_OFFSET
    image = np.interp(depth, np.arange(SERIES_LENGTH), _trace(rng, rng.uniform(2.5, 7)))
    fading = 1 + rng.uniform(0.1, 0.5) * _smooth_noise(rng, (4, rng.uniform(8, 20)))
    return image * np.clip(fading, 0.2, None)


def _salt_texture(rng: np.random.Generator) -> np.ndarray:
    """Salt's interior: contorted, incoherent, weakly layered reflections (unit-scale amplitude).

    A trace is sampled along a strongly and irregularly warped depth, so reflections break into
    short chaotic segments instead of continuous layers; smoothed noise adds speckle.
    """
    y = np.mgrid[0:N, 0:N][0].astype(float)
    sigma_y = rng.uniform(2.5, 5)  # warp amplitude below ~1.3 sigma_y: no folded-over "marble"
    warp = rng.uniform(0.5, 1.3) * sigma_y * _smooth_noise(rng, (sigma_y, rng.uniform(5, 14)))
    chaotic = np.interp(
        y + warp + SERIES_OFFSET, np.arange(SERIES_LENGTH), _trace(rng, rng.uniform(2, 5))
    )
    speckle = _smooth_noise(rng, (0.8, rng.uniform(1, 3)))
    return chaotic + rng.uniform(0.4, 1.2) * speckle


def _blob_field(rng: np.random.Generator, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A score whose upper quantiles are one smooth, irregular blob around a random centre."""
    cy, cx = rng.uniform(-10, N + 10, size=2)
    sy, sx = rng.uniform(15, 60, size=2)
    bowl = ((y - cy) / sy) ** 2 + ((x - cx) / sx) ** 2
    return rng.uniform(0.3, 1.2) * _smooth_noise(rng, rng.uniform(6, 14)) - bowl


def _dome_field(rng: np.random.Generator, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A score whose upper quantiles are a dome: salt below a smooth, convex-ish top boundary.

    Randomly flipped or transposed so bodies also hang from the top or push in from a side.
    """
    top = rng.uniform(0, 0.025) * (x[0] - rng.uniform(-20, N + 20)) ** 2
    top += rng.uniform(0, 6) * np.sin(2 * np.pi * x[0] / rng.uniform(30, 120) + _phase(rng))
    field = y - top[None, :] + rng.uniform(0, 6) * _smooth_noise(rng, rng.uniform(4, 10))
    if rng.random() < 0.2:
        field = field[::-1]
    return field.T if rng.random() < 0.3 else field


def make_mask(rng: np.random.Generator, coverage: float) -> np.ndarray:
    """A uint8 0/1 salt mask of about `coverage` (0 = empty, 1 = full) from a blob or dome.

    Thresholding a smooth score at its (1 - coverage) quantile hits the coverage (before small
    specks are dropped) while keeping the outline smooth.
    """
    if coverage <= 0:
        return np.zeros((N, N), dtype=np.uint8)
    if coverage >= 1:
        return np.ones((N, N), dtype=np.uint8)
    y, x = np.mgrid[0:N, 0:N].astype(float)
    use_dome = rng.random() < min(0.8, 1.2 * coverage)
    field = _dome_field(rng, y, x) if use_dome else _blob_field(rng, y, x)
    return _drop_specks(field > np.quantile(field, 1 - coverage)).astype(np.uint8)


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    """Remove parts under a quarter of the largest part's area: real salt masks are rarely dusty."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= sizes.max() / 4) + 1
    return np.isin(labels, keep)


def _draw_coverage(rng: np.random.Generator) -> float:
    """A target coverage drawn from `COVERAGE_BANDS` (~40% empty, ~5% full)."""
    probabilities = [p for _, p, _, _ in COVERAGE_BANDS]
    _, _, low, high = COVERAGE_BANDS[rng.choice(len(COVERAGE_BANDS), p=probabilities)]
    if low == high:
        return low
    return (
        float(np.exp(rng.uniform(np.log(low), np.log(high))))
        if high <= 0.1
        else float(rng.uniform(low, high))
    )


def _boundary(mask: np.ndarray) -> np.ndarray:
    """A soft line along the mask's outline (not the image border): the top-of-salt reflector."""
    inner = ndimage.binary_erosion(mask, iterations=1, border_value=1)
    return ndimage.gaussian_filter((mask.astype(bool) & ~inner).astype(float), 0.7)


def _to_uint8(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Scale a zero-mean image to 8 bits with a per-image brightness and contrast."""
    contrast, brightness = rng.uniform(12, 42), rng.uniform(85, 165)
    scaled = brightness + contrast * image / (image.std() + 1e-9)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def make_sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic example: (image uint8 HxW, mask uint8 HxW with values 0/1).

    Salt replaces sediment where the mask is 1, at a lower amplitude (sometimes only slightly
    lower: faint salt), optionally with a bright outline; band-limited noise covers everything.
    """
    mask = make_mask(rng, _draw_coverage(rng))
    faint = rng.random() < 0.2
    salt_amplitude = rng.uniform(0.6, 0.9) if faint else rng.uniform(0.25, 0.6)
    image = np.zeros((N, N)) if mask.all() else _sediment(rng)
    if mask.any():
        image = np.where(mask > 0, salt_amplitude * _salt_texture(rng), image)
    if 0 < mask.mean() < 1 and not faint and rng.random() < 0.5:
        image += rng.uniform(1, 2.5) * _boundary(mask)
    noise_level = rng.uniform(0.3, 0.6) if faint else rng.uniform(0.1, 0.4)
    image += noise_level * _smooth_noise(rng, 0.6)
    return _to_uint8(rng, image), mask


# ---------------------------------------------------------------------------------------------
# A whole data set in Kaggle's layout.
# ---------------------------------------------------------------------------------------------


def coverage_band(coverage: float) -> str:
    """The coverage class a mask's salt fraction falls in: empty, small, medium, large or full."""
    if coverage <= 0:
        return "empty"
    if coverage >= 1:
        return "full"
    return "small" if coverage < 0.1 else "medium" if coverage < 0.5 else "large"


def make_ids(rng: np.random.Generator, count: int) -> list[str]:
    """`count` distinct ids of 10 lowercase hex digits, like Kaggle's, drawn from `rng`."""
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        for value in rng.integers(0, 16**10, size=count - len(ids)):
            name = f"{int(value):010x}"
            if name not in seen:
                seen.add(name)
                ids.append(name)
    return ids


def _sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator for one example, so example k is the same whatever the set sizes are."""
    return np.random.default_rng([seed, 0 if split == "train" else 1, index])


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Check `out_dir` can take a new data set; with `overwrite`, delete an old one's CSVs and PNGs.

    The CSVs go first, so an interrupted run never leaves an old train.csv naming deleted files.
    Refusing by default keeps real competition data in the same folder from being mixed with,
    or replaced by, synthetic data. Raises `UserError` for a file, an unwritable folder or an
    existing data set.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output path {out_dir} is a file, not a folder")
    existing = [name for name in LAYOUT_ENTRIES if (out_dir / name).exists()]
    if existing and not overwrite:
        raise UserError(
            f"{out_dir} already holds a data set ({', '.join(existing)}); "
            "pass --overwrite to replace it"
        )
    try:
        for name in LAYOUT_CSVS:
            (out_dir / name).unlink(missing_ok=True)
        for folder in IMAGE_FOLDERS:
            (out_dir / folder).mkdir(parents=True, exist_ok=True)
            for old in (out_dir / folder).glob("*.png"):
                old.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    if not os.access(out_dir, os.W_OK):
        raise UserError(f"cannot write to {out_dir}: permission denied")


def _save_png(path: Path, image: np.ndarray, rgb: bool) -> None:
    """Save a uint8 HxW array as a PNG: RGB with three equal channels (Kaggle's images) or gray.

    Fast zlib level: the files are a few percent bigger and written twice as fast.
    """
    array = np.repeat(image[:, :, None], 3, axis=2) if rgb else image
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def _write_train(out_dir: Path, ids: list[str], seed: int) -> list[tuple[str, float]]:
    """Write the training images and masks; return (rle_mask, coverage) per id, in order."""
    rows = []
    for index, name in enumerate(ids):
        image, mask = make_sample(_sample_rng(seed, "train", index))
        _save_png(out_dir / TRAIN_IMAGES / f"{name}.png", image, rgb=True)
        _save_png(out_dir / TRAIN_MASKS / f"{name}.png", mask * np.uint8(255), rgb=False)
        rows.append((rle_encode(mask), float(mask.mean())))
    return rows


def _write_test(out_dir: Path, ids: list[str], seed: int) -> None:
    """Write the test images (their masks are drawn, then thrown away, as Kaggle hides them)."""
    for index, name in enumerate(ids):
        image, _ = make_sample(_sample_rng(seed, "test", index))
        _save_png(out_dir / TEST_IMAGES / f"{name}.png", image, rgb=True)


def _write_csvs(
    out_dir: Path, train: dict[str, str], test_ids: list[str], depths: np.ndarray
) -> None:
    """Write train.csv, depths.csv and sample_submission.csv, each atomically."""
    write_text(
        out_dir / "train.csv", "id,rle_mask\n" + "".join(f"{i},{rle}\n" for i, rle in train.items())
    )
    all_ids = [*train, *test_ids]
    write_text(
        out_dir / "depths.csv",
        "id,z\n" + "".join(f"{i},{z}\n" for i, z in zip(all_ids, depths, strict=True)),
    )
    write_text(
        out_dir / "sample_submission.csv", "id,rle_mask\n" + "".join(f"{i},1 1\n" for i in test_ids)
    )


def generate_dataset(
    out_dir: str | os.PathLike,
    n_train: int = 1000,
    n_test: int = 400,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, int | float]:
    """Write a synthetic data set in Kaggle's layout to `out_dir`; return its counts.

    The counts are `train`, `test`, the number of training masks per coverage class (`empty`,
    `small`, `medium`, `large`, `full`) and `seconds`. Images are written first and the CSVs
    last, so an interrupted run never leaves a train.csv naming missing files.
    """
    if n_train < 0 or n_test < 0:
        raise UserError(f"image counts must be 0 or more, not {n_train} train / {n_test} test")
    start = time.perf_counter()
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    rng = np.random.default_rng(seed)
    ids = make_ids(rng, n_train + n_test)
    train_ids, test_ids = ids[:n_train], ids[n_train:]
    rows = _write_train(out, train_ids, seed)
    _write_test(out, test_ids, seed)
    depths = rng.integers(DEPTH_RANGE[0], DEPTH_RANGE[1] + 1, size=len(ids))
    _write_csvs(
        out, {i: rle for i, (rle, _) in zip(train_ids, rows, strict=True)}, test_ids, depths
    )
    counts: dict[str, int | float] = {"train": n_train, "test": n_test}
    for name, *_ in COVERAGE_BANDS:
        counts[name] = sum(coverage_band(coverage) == name for _, coverage in rows)
    counts["seconds"] = round(time.perf_counter() - start, 2)
    return counts
