"""The model factory: every model is one assembly of registered parts.

    image -> input adapter (`inputs.adapt_input`: coordinate channels, grey -> RGB, the
    backbone's preprocessing) -> zero padding to the encoder's stride multiple (`blocks.pad`)
    -> encoder -> decoder -> hypercolumn (`model.hypercolumn`) -> crop back (`blocks.crop`)
    -> heads (`heads.logits_output`: the float32 "logits", packed with `model.deep_supervision`)

A config with an `encoder` object takes its encoder from `encoders.BACKBONES` (`encoder.backbone`,
`encoder.weights`) and its decoder from `decoders.DECODERS` (`encoder.type`, the original's name
for the decoder); one without takes both from `MODELS` (`model.type`: the original's
from-scratch residual U-Net, `residual.py`). Adding a backbone, a decoder or a from-scratch
model is one registry entry.
"""

from collections.abc import Callable
from dataclasses import dataclass

import keras

from ..config import Config, EncoderConfig, ModelConfig
from ..errors import UserError
from . import encoders, residual
from .blocks import hypercolumn, pad, padded_size
from .decoders import DECODERS
from .heads import logits_output
from .inputs import adapt_input


@dataclass(frozen=True)
class Encoder:
    """An encoder as the factory assembles it: `build(x)` -> (features shallow to deep, their
    strides); the input is padded to a multiple of `stride`, at least `min_size`; `preprocess`
    is the `encoders.PREPROCESSING` key of an ImageNet backbone (None: images as they are)."""

    build: Callable
    stride: int
    min_size: int = 1
    preprocess: str | None = None


@dataclass(frozen=True)
class Architecture:
    """What `build_model` assembles: the model's name, its encoder, its decoder (a `DECODERS`
    signature) and the kernel size of its logits conv."""

    name: str
    encoder: Encoder
    decoder: Callable
    head_kernel: int


def unet_resnet(options: ModelConfig) -> Architecture:
    """The original's U-Net with residual blocks, from scratch, with its 1x1 logits conv."""
    encoder = Encoder(lambda x: residual.encode(x, options), residual.encoder_stride(options))
    return Architecture("unet_resnet", encoder, residual.decode, head_kernel=1)


# `model.type` (configs without an `encoder`) -> the from-scratch architecture it names
MODELS: dict[str, Callable[[ModelConfig], Architecture]] = {"unet_resnet": unet_resnet}


def lookup(registry: dict, name: str, key: str):
    """`registry[name]`, or a one-line `UserError` naming the config key and the known names."""
    if name not in registry:
        known = ", ".join(sorted(registry))
        raise UserError(f"key '{key}': unknown name {name!r} (known: {known})")
    return registry[name]


def on_backbone(spec: EncoderConfig, options: ModelConfig) -> Architecture:
    """`spec.type` (the decoder) on the pretrained `spec.backbone` with `spec.weights`
    (a config's `encoder` object), with `segmentation_models`' 3x3 logits conv."""
    name = spec.backbone
    backbone = lookup(encoders.BACKBONES, name, "encoder.backbone")
    decoder = lookup(DECODERS, spec.type, "encoder.type")

    def build(x):
        model, strides = encoders.build_encoder(name, x.shape[1], spec.weights)
        return model(x), strides

    encoder = Encoder(build, encoders.STRIDE, backbone.min_size, backbone.preprocess)
    return Architecture(f"{spec.type.lower()}_{name}", encoder, decoder, head_kernel=3)


def architecture(config: Config) -> Architecture:
    """The architecture a resolved config names: on its `encoder`, or its `model.type`."""
    if config.encoder is not None:
        return on_backbone(config.encoder, config.model)
    return lookup(MODELS, config.model.type, "model.type")(config.model)


def check_model_config(config: Config) -> None:
    """Fail early, with the known names, when a config names a part this build lacks (nothing
    is built)."""
    architecture(config)


def build_model(config: dict) -> keras.Model:
    """Build the configured logits model for `input.size` x `input.size` x `input.channels`
    images; its output is float32 (H, W, 1) logits (packed heads with deep supervision)."""
    keras.mixed_precision.set_dtype_policy(config.model.precision)
    return assemble(architecture(config), config)


def assemble(arch: Architecture, config: Config) -> keras.Model:
    """Input adapter -> pad -> encoder -> decoder -> hypercolumn -> crop -> heads."""
    shape, options = config.input, config.model
    size = shape.size
    inputs = keras.Input((size, size, shape.channels), name="image")
    pixel_max = 1.0 if shape.normalize else 255.0
    x = adapt_input(
        inputs, shape.coord_channels, arch.encoder.preprocess, pixel_max, shape.cumsum_channel
    )
    padded = padded_size(size, arch.encoder.stride, arch.encoder.min_size)
    features, strides = arch.encoder.build(pad(x, size, padded))
    x, levels = arch.decoder(features, strides, padded, options)
    if options.hypercolumn:
        x = hypercolumn([*levels, x], padded, options.start_filters)
    logits = logits_output(
        x, levels, features[-1], size, padded, arch.head_kernel, options.deep_supervision
    )
    return keras.Model(inputs, logits, name=arch.name)
