"""Figures of a fold's training (learning curves, score vs threshold, validation predictions), of
the fold ensemble's post-processing search and of a blend's weights."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .atomic import atomic_path  # noqa: E402


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_history(history: dict, title: str, path: Path) -> None:
    """Loss and competition score per epoch, training and validation."""
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(12, 4))
    for ax, key in ((ax_loss, "loss"), (ax_score, "score")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            if prefix + key in history:
                ax.plot(
                    np.arange(1, len(history[prefix + key]) + 1),
                    history[prefix + key],
                    label=f"{label} {key}",
                )
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(title)
    _save(fig, path)


def plot_threshold(
    thresholds: np.ndarray, scores: np.ndarray, best: float, title: str, path: Path
) -> None:
    """Validation competition score against the binarisation threshold."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(thresholds, scores)
    ax.plot([best], [scores.max()], "xr", label=f"best {best:.3f}: {scores.max():.4f}")
    ax.set_xlabel("threshold")
    ax.set_ylabel("competition score")
    ax.set_title(title)
    ax.legend()
    _save(fig, path)


def plot_predictions(
    images: np.ndarray,
    masks: np.ndarray,
    probs: np.ndarray,
    threshold: float,
    path: Path,
    n: int = 8,
    seed: int = 0,
) -> None:
    """A grid of validation images: image, truth, predicted probability and binary prediction."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(images), size=min(n, len(images)), replace=False)
    fig, axes = plt.subplots(len(pick), 4, figsize=(8, 2 * len(pick)), squeeze=False)
    for row, k in zip(axes, pick, strict=True):
        panels = (images[k, ..., 0], masks[k], probs[k], probs[k] > threshold)
        titles = (f"image (cov {masks[k].mean():.2f})", "truth", "probability", "prediction")
        for ax, panel, name in zip(row, panels, titles, strict=True):
            ax.imshow(
                panel,
                cmap="gray" if name.startswith("image") else "viridis",
                vmin=0,
                vmax=255 if name.startswith("image") else 1,
            )
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    _save(fig, path)


def plot_threshold_area(
    thresholds: np.ndarray,
    min_areas: np.ndarray,
    scores: np.ndarray,
    best: tuple[float, int],
    title: str,
    path: Path,
) -> None:
    """The ensemble's out-of-fold score over its joint search, `scores` (thresholds, min_areas).

    Left: score against threshold with and without the chosen min-area rule; right: score
    against min_area at the chosen threshold.
    """
    t_best, a_best = best
    ti, ai = int(np.argmin(np.abs(thresholds - t_best))), int(np.argmin(np.abs(min_areas - a_best)))
    fig, (ax_t, ax_a) = plt.subplots(1, 2, figsize=(12, 4))
    ax_t.plot(thresholds, scores[:, ai], label=f"min_area {a_best}")
    if a_best != min_areas[0]:
        ax_t.plot(thresholds, scores[:, 0], "--", label=f"min_area {min_areas[0]}")
    ax_a.plot(min_areas, scores[ti, :], label=f"threshold {t_best:.3f}")
    for ax, x, name in ((ax_t, t_best, "threshold"), (ax_a, a_best, "min_area (pixels)")):
        ax.plot([x], [scores[ti, ai]], "xr", label=f"best {scores[ti, ai]:.4f}")
        ax.set_xlabel(name)
        ax.set_ylabel("out-of-fold competition score")
        ax.legend()
    fig.suptitle(title)
    _save(fig, path)


def plot_blend(
    names: list[str], summary: dict, candidates: np.ndarray, best: np.ndarray, path: Path
) -> None:
    """A blend's out-of-fold scores. Left: each member alone, equal weights and the chosen
    weights. Right: per member, the best score of the candidates giving it each weight
    (`best` holds each candidate weight vector's best score over thresholds and min_areas)."""
    fig, (ax_bar, ax_w) = plt.subplots(1, 2, figsize=(12, 4))
    labels = [*names, "equal weights", f"chosen ({summary['weights_kept']})"]
    values = [row["oof_score"] for row in summary["members"]]
    values += [summary["oof_score_equal_weights"], summary["oof_score"]]
    ax_bar.barh(labels, values)
    ax_bar.set_xlim(max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.02))
    ax_bar.set_xlabel("out-of-fold competition score")
    for m, name in enumerate(names):
        weights = np.unique(np.round(candidates[:, m], 9))
        scores = [best[np.isclose(candidates[:, m], w)].max() for w in weights]
        ax_w.plot(weights, scores, "o-", label=name)
    ax_w.set_xlabel("member weight")
    ax_w.set_ylabel("best out-of-fold score")
    ax_w.legend(fontsize=8)
    fig.suptitle(f"{summary['run']}: weights {', '.join(f'{w:.2f}' for w in summary['weights'])}")
    _save(fig, path)
