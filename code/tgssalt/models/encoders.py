"""Backbone registry: `BACKBONES` maps `encoder.backbone` to how to build it; one entry each.
(The from-scratch U-Net's encoder, which has no ImageNet weights, is `residual.encode`.)

An entry names the builder, the skip-connection layers at strides 2, 4, 8 and 16 (a layer name, a
layer index where Keras only gives automatic names, or None where the backbone has no feature
map at that stride), the input preprocessing its ImageNet weights expect, and where `imagenet`
weights come from. `build_encoder` returns a nested `keras.Model` named "encoder" whose outputs are
those skips and the stride-32 features, so `training.set_encoder_trainable` finds it by name.
"""

import functools
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import applications as apps

from ..errors import UserError, first_line
from . import resnets
from .blocks import BN_MOMENTUM

TIMM_HUB = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"


@dataclass(frozen=True)
class Backbone:
    """How to build one encoder; `preprocess` is a key of `PREPROCESSING`."""

    builder: object  # (input_shape, weights) -> keras.Model, or (input_shape) for timm ones
    skips: tuple  # layer name / index / None at strides 2, 4, 8, 16
    preprocess: str
    timm: str | None = None  # the timm checkpoint holding its ImageNet weights
    min_size: int = 32  # smallest input the builder accepts


def _app(fn, **kwargs):
    """A keras.applications builder without the classifier."""
    return functools.partial(fn, include_top=False, **kwargs)


def _resnet(blocks: tuple) -> tuple:
    """The stem's ReLU, then the output of the last block of the stride-4, -8 and -16 stages."""
    outs = tuple(f"conv{s}_block{n}_out" for s, n in zip((2, 3, 4), blocks, strict=True))
    return ("conv1_relu", *outs)


def _resnet_v2(blocks: tuple) -> tuple:
    """ResNetV2 strides in a stage's last block, whose pre-activation is the stage's features."""
    pre = tuple(f"conv{s}_block{n}_preact_relu" for s, n in zip((2, 3, 4), blocks, strict=True))
    return ("conv1_conv", *pre)


_EFFICIENT = ("block2a_expand_activation", "block3a_expand_activation")
_EFFICIENT += ("block4a_expand_activation", "block6a_expand_activation")
_V2 = {"b0": (1, 2), "b1": (2, 3), "b2": (2, 3), "b3": (2, 3), "s": (2, 4)}  # stage 1, 2 blocks


def _efficient(index: int) -> Backbone:
    """EfficientNet-B<index>: skips at the expansions before each stride (normalises inside)."""
    return Backbone(_app(getattr(apps, f"EfficientNetB{index}")), _EFFICIENT, "raw255")


def _efficient_v2(size: str) -> Backbone:
    """EfficientNetV2: the last block of stages 1 and 2, then expansions as EfficientNet."""
    first, second = _V2[size]
    suffix = "project_activation" if first == 1 else "add"
    skips = (f"block1{'abcd'[first - 1]}_{suffix}", f"block2{'abcdef'[second - 1]}_add")
    skips += _EFFICIENT[2:]
    fn = getattr(apps, f"EfficientNetV2{size.upper()}")
    return Backbone(_app(fn, include_preprocessing=True), skips, "raw255")


def _convnext(size: str) -> Backbone:
    """ConvNeXt starts at stride 4 (a 4x4 patchify stem): no stride-2 skip."""
    name = f"convnext_{size}"
    blocks = {"tiny": (3, 3, 9), "small": (3, 3, 27), "base": (3, 3, 27)}[size]
    skips = (None,) + tuple(
        f"{name}_stage_{i}_block_{n - 1}_identity" for i, n in enumerate(blocks)
    )
    fn = getattr(apps, f"ConvNeXt{size.title()}")
    return Backbone(_app(fn, include_preprocessing=True), skips, "raw255")


_DENSENET = ("conv1_relu", "pool2_conv", "pool3_conv", "pool4_conv")
# InceptionResNetV2 has only automatic layer names below stride 8: indices 9 and 16, as
# segmentation_models used; its valid padding gives in-between sizes the decoders resize to.
_INCEPTION = (9, 16, "block35_10_ac", "block17_20_ac")

BACKBONES: dict[str, Backbone] = {
    "resnet34": Backbone(resnets.build_resnet34, _resnet((3, 4, 6)), "torch", "resnet34.tv_in1k"),
    "resnext50": Backbone(
        resnets.build_resnext50, _resnet((3, 4, 6)), "torch", "resnext50_32x4d.tv_in1k"
    ),
    "resnet50": Backbone(_app(apps.ResNet50), _resnet((3, 4, 6)), "caffe"),
    "resnet101": Backbone(_app(apps.ResNet101), _resnet((3, 4, 23)), "caffe"),
    "resnet152": Backbone(_app(apps.ResNet152), _resnet((3, 8, 36)), "caffe"),
    "resnet50v2": Backbone(_app(apps.ResNet50V2), _resnet_v2((3, 4, 6)), "tf"),
    "resnet101v2": Backbone(_app(apps.ResNet101V2), _resnet_v2((3, 4, 23)), "tf"),
    "resnet152v2": Backbone(_app(apps.ResNet152V2), _resnet_v2((3, 8, 36)), "tf"),
    "densenet121": Backbone(_app(apps.DenseNet121), _DENSENET, "torch"),
    "densenet169": Backbone(_app(apps.DenseNet169), _DENSENET, "torch"),
    "densenet201": Backbone(_app(apps.DenseNet201), _DENSENET, "torch"),
    "inceptionresnetv2": Backbone(_app(apps.InceptionResNetV2), _INCEPTION, "tf", min_size=96),
    **{f"efficientnetb{i}": _efficient(i) for i in range(8)},
    **{f"efficientnetv2{size}": _efficient_v2(size) for size in _V2},
    **{f"convnext{size}": _convnext(size) for size in ("tiny", "small", "base")},
}

# Input preprocessing each family's ImageNet weights expect, from pixels in [0, 1]:
# (per-channel scale, per-channel offset, reverse RGB to BGR). "raw255" models normalise inside.
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PREPROCESSING = {
    "torch": ([1 / s for s in _STD], [-m / s for m, s in zip(_MEAN, _STD, strict=True)], False),
    "caffe": ([255.0] * 3, [-103.939, -116.779, -123.68], True),
    "tf": ([2.0] * 3, [-1.0] * 3, False),
    "raw255": ([255.0] * 3, [0.0] * 3, False),
}


STRIDE = 32  # every backbone's total downsampling


def build_encoder(name: str, size: int, weights: str | None) -> tuple[keras.Model, tuple]:
    """The backbone for `size`x`size`x3 input as a model named "encoder".

    Returns the model, whose outputs are its skip features and then its stride-32 features, and
    the stride of each output (no stride 2 for ConvNeXt, which starts at stride 4).
    """
    spec, kind = BACKBONES[name], _weights_kind(name, weights)
    base = _build_base(name, spec, (size, size, 3), weights if kind != "keras" else None)
    picks = [(s, key) for s, key in zip((2, 4, 8, 16), spec.skips, strict=True) if key is not None]
    layers = [base.layers[k] if isinstance(k, int) else base.get_layer(k) for _, k in picks]
    outputs = [layer.output for layer in layers] + [base.output]
    encoder = keras.Model(base.inputs, outputs, name="encoder")
    if kind == "keras":
        try:
            encoder.load_weights(weights)
        except (ValueError, KeyError, OSError) as exc:
            message = f"{weights}: not weights of a {name} encoder ({first_line(exc)})"
            raise UserError(message) from None
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return encoder, tuple(s for s, _ in picks) + (STRIDE,)


def _weights_kind(name: str, weights: str | None) -> str:
    """What `encoder.weights` asks for: none, imagenet, keras (.weights.h5) or a backbone file."""
    if weights is None or weights == "imagenet":
        return str(weights).lower()
    timm = BACKBONES[name].timm is not None
    own = ".safetensors (a timm checkpoint)" if timm else ".h5 (a keras.applications file)"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"key 'encoder.weights': no such file {weights!r}")
    if path.name.endswith(".weights.h5"):
        return "keras"
    if path.suffix == (".safetensors" if timm else ".h5"):
        return "file"
    raise UserError(
        f"key 'encoder.weights': {weights!r} is neither a Keras .weights.h5 file nor {own}"
    )


def _build_base(name: str, spec: Backbone, shape: tuple, weights: str | None) -> keras.Model:
    """Build the backbone, loading `imagenet` or a backbone-specific weights file."""
    if spec.timm is None:
        return _application(name, spec, shape, weights)
    base = spec.builder(shape)
    if weights == "imagenet":
        weights = _timm_download(name, spec.timm)
    if weights is not None:
        resnets.load_timm_weights(base, Path(weights).expanduser())
    return base


def _application(name: str, spec: Backbone, shape: tuple, weights: str | None) -> keras.Model:
    """A keras.applications model; its ImageNet download failing offline is a `UserError`."""
    try:
        return spec.builder(input_shape=shape, weights=weights)
    except Exception as exc:  # keras.utils.get_file raises a bare Exception when offline
        if weights != "imagenet" or not ("fetch failure" in str(exc) or isinstance(exc, OSError)):
            raise
        raise UserError(
            f"key 'encoder.weights': cannot download the ImageNet weights of {name} "
            f"({first_line(exc)}); without network, fetch them once on a machine with network "
            "(they are cached in ~/.keras/models/, copy that file here) or set encoder.weights "
            "to a local weights file path"
        ) from None


def _timm_download(name: str, checkpoint: str) -> str:
    """timm's ImageNet checkpoint for `name`, from the Hugging Face Hub or ~/.keras/models."""
    fname, origin = f"{checkpoint}.safetensors", TIMM_HUB.format(checkpoint)
    try:
        return keras.utils.get_file(fname, origin, cache_subdir="models")
    except Exception as exc:  # keras.utils.get_file raises a bare Exception when offline
        raise UserError(
            f"key 'encoder.weights': cannot download the ImageNet weights of {name} from "
            f"{origin} ({first_line(exc)}); without network, download that file to "
            f"~/.keras/models/{fname} or set encoder.weights to its local path"
        ) from None
