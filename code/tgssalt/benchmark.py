"""Training and prediction throughput of a config's model, optionally against its smp peer.

`run_benchmark` times, after a warm-up, our model (the one `build_model(config)` builds, on the
current Keras backend and device) and, with `peer="smp"`, the same decoder on the same backbone
in segmentation_models_pytorch (smp), eager PyTorch. The sides are interleaved repeat by repeat
and the median of the repeats is reported, because shared machines are noisy. Random data of the
config's input size and channels; encoder weights are random (speed does not depend on them).

- training: img/s of `model.fit` over `steps` batches (Adam + binary cross-entropy on logits,
  compiled as `training.compile_stage` compiles: XLA except TensorFlow on a CPU); smp: the same
  steps in eager PyTorch (Adam + BCEWithLogitsLoss, `torch.autocast` for bfloat16).
- prediction: img/s of horizontal-flip TTA as `inference.predict_probs` does it (two forward
  passes per image, probabilities averaged; images counted once); smp: the same under
  `torch.inference_mode`. The resizes to and from 101 px that `predict_probs` adds are not timed.
- pipeline (`pipeline_speed`): one epoch of `pipeline.AugmentedBatches` over random uint8 images
  of the competition's size, preprocessed as a fold preprocesses them.
"""

import dataclasses
import os
import statistics
import sys
import time

import keras
import numpy as np

from .competition import IMAGE_SIZE
from .config import Config
from .device import describe_device, jit_compile_setting
from .errors import UserError
from .inference import probability_model
from .losses import get_loss
from .models import build_model
from .models.heads import is_packed
from .pipeline import AugmentedBatches, mask_targets, preprocess

INSTALL_HINT = "--peer smp needs torch and segmentation-models-pytorch: " + (
    "pip install -r requirements-bench.txt"
)
# Our backbone names -> smp encoder names (smp's "tu-" prefix takes a timm model).
SMP_ENCODERS = {
    **{f"resnet{n}": f"resnet{n}" for n in (34, 50, 101, 152)},
    "resnext50": "resnext50_32x4d",
    **{f"densenet{n}": f"densenet{n}" for n in (121, 169, 201)},
    "inceptionresnetv2": "inceptionresnetv2",
    **{f"efficientnetb{i}": f"efficientnet-b{i}" for i in range(8)},
    **{f"convnext{s}": f"tu-convnext_{s}" for s in ("tiny", "small", "base")},
}
SMP_DECODERS = ("Unet", "FPN", "Linknet")
TTA = "hflip: 2 forward passes per image, averaged"


def benchmark_config(config: Config, precision: str | None) -> Config:
    """The config to time: random encoder weights (no download), `precision` if given."""
    if precision:
        config = dataclasses.replace(
            config, model=dataclasses.replace(config.model, precision=precision)
        )
    if config.encoder:
        config = dataclasses.replace(
            config, encoder=dataclasses.replace(config.encoder, weights=None)
        )
    return config


def random_data(n: int, size: int, channels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images, masks): float32 (n, size, size, channels) in [0, 1] and 0/1 float32 masks."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, channels), dtype=np.float32)
    return x, (rng.random((n, size, size, 1)) > 0.5).astype(np.float32)


def timed(fn) -> float:
    """Seconds `fn()` takes."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


class KerasSide:
    """Our model on the current Keras backend: `train()` and `predict()` return img/s."""

    name = "ours"

    def __init__(self, config: Config, batch: int, predict_batch: int, steps: int):
        keras.backend.clear_session()
        self.model = build_model(config)
        loss = get_loss("bce", deep_supervision=is_packed(self.model))
        self.model.compile(optimizer="adam", loss=loss, jit_compile=jit_compile_setting())
        self.probs = probability_model(self.model)
        self.batch, self.predict_batch = batch, predict_batch
        size, channels = config.input.size, config.input.channels
        self.x, self.y = random_data(batch * steps, size, channels)
        self.xp = random_data(
            images_per_predict_repeat(batch, predict_batch, steps), size, channels
        )[0]

    def train(self) -> float:
        fit = lambda: self.model.fit(self.x, self.y, batch_size=self.batch, verbose=0)  # noqa: E731
        return len(self.x) / timed(fit)

    def predict(self) -> float:
        return len(self.xp) / timed(lambda: keras_tta(self.probs, self.xp, self.predict_batch))


def images_per_predict_repeat(batch: int, predict_batch: int, steps: int) -> int:
    """Images to predict per repeat: as many as one training repeat, whole predict batches."""
    return max(1, -(-batch * steps // predict_batch)) * predict_batch


def keras_tta(model: keras.Model, x: np.ndarray, batch: int) -> np.ndarray:
    """Flip TTA exactly as `inference.predict_probs` runs it on preprocessed images."""
    probs = model.predict(x, batch_size=batch, verbose=0)
    flipped = model.predict(x[:, :, ::-1], batch_size=batch, verbose=0)
    return 0.5 * (probs + flipped[:, :, ::-1])


def import_smp():
    """(torch, segmentation_models_pytorch), or a `UserError` saying how to install them.

    PyPI's torchvision wheels are CUDA builds: next to a CPU-only torch their compiled ops do not
    load and `import torchvision` fails on two unguarded fake-op registrations (nms, qnms). smp
    needs only torchvision's Python models, so those two schemas are defined and it is retried.
    """
    try:
        import torch
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for module in [m for m in sys.modules if m.split(".")[0] in _SMP_STACK]:
            del sys.modules[module]
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP.append(lib)
        import segmentation_models_pytorch as smp
    return torch, smp


_SMP_STACK = ("torchvision", "timm", "segmentation_models_pytorch")
_KEEP = []  # the torch.library fragment must outlive the import


def smp_names(config: Config) -> tuple[str, str]:
    """(smp decoder class, smp encoder name) for the config, or a `UserError` if there is none."""
    encoder = config.encoder
    if not encoder:
        raise UserError(
            f"model.type {config.model.type!r} (the from-scratch U-Net) has no exact "
            "segmentation_models_pytorch equivalent; --peer smp needs a config with an 'encoder'"
        )
    if encoder.type not in SMP_DECODERS or encoder.backbone not in SMP_ENCODERS:
        raise UserError(
            f"no smp equivalent of {encoder.type} on {encoder.backbone!r} "
            f"(smp peers exist for: {', '.join(sorted(SMP_ENCODERS))})"
        )
    return encoder.type, SMP_ENCODERS[encoder.backbone]


class SmpSide:
    """The smp peer, eager PyTorch on the CPU or the first CUDA device: img/s like `KerasSide`."""

    name = "smp"

    def __init__(self, config: Config, batch: int, predict_batch: int, steps: int):
        self.torch, smp = import_smp()
        decoder, encoder = smp_names(config)
        torch, channels = self.torch, config.input.channels
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = getattr(smp, decoder)(
            encoder, encoder_weights=None, in_channels=channels, classes=1
        ).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.BCEWithLogitsLoss()
        self.bf16 = config.model.precision == "mixed_bfloat16"
        size = -(-config.input.size // 32) * 32  # smp needs a multiple of its stride
        x, y = random_data(batch * steps, size, channels)
        self.batches = [
            self._tensor(b) for b in zip(np.split(x, steps), np.split(y, steps), strict=True)
        ]
        xp = random_data(images_per_predict_repeat(batch, predict_batch, steps), size, channels)[0]
        self.predict_batches = [
            self._tensor([b])[0] for b in np.split(xp, len(xp) // predict_batch)
        ]

    def _tensor(self, arrays) -> list:
        """NHWC numpy -> NCHW float32 tensors on the device."""
        return [
            self.torch.from_numpy(a).permute(0, 3, 1, 2).contiguous().to(self.device)
            for a in arrays
        ]

    def _autocast(self):
        return self.torch.autocast(self.device, dtype=self.torch.bfloat16, enabled=self.bf16)

    def train(self) -> float:
        self.model.train()
        started = time.perf_counter()
        for x, y in self.batches:
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                logits = self.model(x)
            self.loss(logits.float(), y).backward()
            self.optimizer.step()
        self._sync()
        return sum(len(x) for x, _ in self.batches) / (time.perf_counter() - started)

    def predict(self) -> float:
        self.model.eval()
        started = time.perf_counter()
        with self.torch.inference_mode(), self._autocast():
            out = []
            for x in self.predict_batches:
                probs = self.torch.sigmoid(self.model(x)).float()
                flipped = self.torch.sigmoid(self.model(x.flip(-1))).float().flip(-1)
                out.append((0.5 * (probs + flipped)).cpu().numpy())
        return sum(len(o) for o in out) / (time.perf_counter() - started)

    def _sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()


def interleaved(sides: list, repeats: int) -> dict:
    """{side: {"train", "predict": median img/s; "train_best", "predict_best": the best repeat}}.

    One warm-up call of each first. The best repeat is the one least disturbed by other load
    (PyTorch's OpenMP threads suffer most from a competing process on a small machine).

    Each repeat times every side's training, then every side's prediction, so that a burst of
    load on a shared machine hits both sides rather than one.
    """
    for side in sides:
        side.train(), side.predict()  # warm-up: compilation, allocation, caches
    samples = {side.name: {"train": [], "predict": []} for side in sides}
    for _ in range(repeats):
        for phase in ("train", "predict"):
            for side in sides:
                samples[side.name][phase].append(getattr(side, phase)())
    return {
        name: {
            **{phase: statistics.median(values) for phase, values in phases.items()},
            **{f"{phase}_best": max(values) for phase, values in phases.items()},
        }
        for name, phases in samples.items()
    }


def pipeline_speed(config: Config, batch: int, images: int, jitter: float | None = None) -> dict:
    """One epoch of `AugmentedBatches` over `images` random uint8 101 px images: batches/s, img/s.

    `preprocess_s` is the one-off preprocessing (scaling, resizing) a fold does before training.
    `jitter` overrides brightness and contrast (the config's augmentation otherwise).
    """
    rng = np.random.default_rng(0)
    channels = config.input.channels
    raw = rng.integers(0, 256, (images, IMAGE_SIZE, IMAGE_SIZE, channels), dtype=np.uint8)
    masks = rng.integers(0, 2, (images, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    started = time.perf_counter()
    x, y = preprocess(raw, config), mask_targets(masks, config)
    prep = time.perf_counter() - started
    aug = config.augmentation
    if jitter is not None:
        aug = dataclasses.replace(aug, brightness=jitter, contrast=jitter)
    batches = AugmentedBatches(x, y, batch, aug, seed=config.seed)
    seconds = timed(lambda: [batches[i] for i in range(len(batches))])
    return {"batches_s": len(batches) / seconds, "img_s": images / seconds, "preprocess_s": prep}


def thread_settings() -> dict:
    """CPU cores and the intra-/inter-op threads each framework uses (0: its default, all)."""
    found = {"cpu_count": os.cpu_count()}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        found["tf_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        found["tf_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        found["torch_threads"] = torch.get_num_threads()
        found["torch_interop"] = torch.get_num_interop_threads()
    return found


def run_benchmark(config: Config, options: dict) -> dict:
    """Measure as `options` asks (batch, predict_batch, steps, repeats, peer, precision,
    pipeline, pipeline_images) and return the summary `code/benchmark.py` prints as JSON."""
    config = benchmark_config(config, options["precision"])
    if options["peer"]:
        smp_names(config)  # fail before the slow part when the peer cannot run
        import_smp()
    shape = (options["batch"], options["predict_batch"], options["steps"])
    sides = [KerasSide(config, *shape)]
    if options["peer"]:
        sides.append(SmpSide(config, *shape))
    speeds = interleaved(sides, options["repeats"])
    summary = {}
    for phase in ("train", "predict", "train_best", "predict_best"):
        key = phase.replace("_best", "_img_s_best") if "best" in phase else f"{phase}_img_s"
        summary[key] = round(speeds["ours"][phase], 2)
        if options["peer"]:
            summary[f"peer_{key}"] = round(speeds["smp"][phase], 2)
            ratio = phase.replace("_best", "_ratio_best") if "best" in phase else f"{phase}_ratio"
            summary[ratio] = round(speeds["ours"][phase] / speeds["smp"][phase], 3)
    if options["pipeline"]:
        for label, jitter in (("pipeline", None), ("pipeline_jitter", 0.1)):
            found = pipeline_speed(config, options["batch"], options["pipeline_images"], jitter)
            summary.update({f"{label}_{k}": round(v, 3) for k, v in found.items()})
    summary.update(describe_run(config, options))
    return summary


def describe_run(config: Config, options: dict) -> dict:
    """The conditions of a run, for the JSON line."""
    encoder = config.encoder
    return {
        "model": f"{encoder.type} {encoder.backbone}" if encoder else config.model.type,
        "size": config.input.size,
        "channels": config.input.channels,
        "backend": keras.backend.backend(),
        "device": describe_device(),
        "batch": options["batch"],
        "predict_batch": options["predict_batch"],
        "steps": options["steps"],
        "repeats": options["repeats"],
        "precision": config.model.precision,
        "tta": TTA,
        "peer": options["peer"] and "smp (eager PyTorch)",
        "threads": thread_settings(),
    }


def format_table(summary: dict) -> str:
    """The human-readable table printed above the JSON line."""
    rows = [("", "ours", "smp", "ours/smp")]
    for phase in ("train", "predict"):
        for label, key, ratio in (
            (f"{phase} img/s", f"{phase}_img_s", f"{phase}_ratio"),
            (f"{phase} img/s best", f"{phase}_img_s_best", f"{phase}_ratio_best"),
        ):
            peer, ratio = summary.get(f"peer_{key}"), summary.get(ratio)
            rows.append(
                (
                    label,
                    f"{summary[key]:.1f}",
                    "-" if peer is None else f"{peer:.1f}",
                    "-" if ratio is None else f"{ratio:.2f}x",
                )
            )
    for label in ("pipeline", "pipeline_jitter"):
        if f"{label}_img_s" in summary:
            speed = f"{summary[f'{label}_img_s']:.0f} ({summary[f'{label}_batches_s']:.0f} b/s)"
            rows.append((f"{label} img/s", speed, "-", "-"))
    head = (
        f"{summary['model']} {summary['size']} px x{summary['channels']}, {summary['device']}, "
        f"batch {summary['batch']} (predict {summary['predict_batch']}), "
        f"{summary['precision']}, median (and best) of {summary['repeats']}; TTA {summary['tta']}"
    )
    lines = [f"{a:22s} {b:>18s} {c:>10s} {d:>9s}" for a, b, c, d in rows]
    return "\n".join([head, *lines, f"threads: {summary['threads']}"])
