"""ResNet-34 and ResNeXt-50 (32x4d) encoders in Keras 3, which `keras.applications` lacks.

The layout is torchvision's (stride on the 3x3 convolution, PyTorch-style explicit padding), so
timm's ImageNet checkpoints (`timm/resnet34.tv_in1k`, `timm/resnext50_32x4d.tv_in1k` on the
Hugging Face Hub, the torchvision weights the original's `segmentation_models` encoders matched)
load into it tensor for tensor. Layer names follow `keras.applications.ResNet50`
(`conv1_relu`, `conv2_block3_out`, ...), so skip connections are chosen the same way for every
ResNet. `load_timm_weights` reads a timm `model.safetensors` file with numpy alone.
"""

import json
import struct
from pathlib import Path

import keras
import numpy as np
from keras import layers

from ..errors import UserError

BN_EPSILON = 1e-5  # PyTorch's, which the ImageNet statistics were computed with
STAGES = {"resnet34": (3, 4, 6, 3), "resnext50": (3, 4, 6, 3)}


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, groups: int = 1, relu=True):
    """Conv (PyTorch padding), batch norm, optional ReLU; layers named `<name>_conv/_bn/_relu`."""
    if stride > 1 and kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    padding = "valid" if stride > 1 or kernel == 1 else "same"
    x = layers.Conv2D(
        filters, kernel, strides=stride, padding=padding, groups=groups, use_bias=False,
        name=f"{name}_conv",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _shortcut(x, filters: int, stride: int, name: str):
    """Identity, or a strided 1x1 projection when the shape changes (timm's `downsample`)."""
    if stride == 1 and x.shape[-1] == filters:
        return x
    return _conv_bn(x, filters, 1, stride, f"{name}_0", relu=False)


def basic_block(x, filters: int, stride: int, name: str):
    """ResNet-18/34 block: two 3x3 convolutions plus the shortcut."""
    shortcut = _shortcut(x, filters, stride, name)
    y = _conv_bn(x, filters, 3, stride, f"{name}_1")
    y = _conv_bn(y, filters, 3, 1, f"{name}_2", relu=False)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def resnext_block(x, filters: int, stride: int, name: str, groups: int = 32, width: int = 4):
    """ResNeXt bottleneck: 1x1, grouped 3x3 (`groups` paths of `width` channels per 64), 1x1."""
    inner = filters // 64 * groups * width
    shortcut = _shortcut(x, filters * 4, stride, name)
    y = _conv_bn(x, inner, 1, 1, f"{name}_1")
    y = _conv_bn(y, inner, 3, stride, f"{name}_2", groups=groups)
    y = _conv_bn(y, filters * 4, 1, 1, f"{name}_3", relu=False)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def _resnet(input_shape, block, blocks: tuple, name: str) -> keras.Model:
    """Stem (7x7/2 conv, 3x3/2 max pool) and four stages of `block`, 64..512 base filters."""
    inputs = keras.Input(input_shape, name="encoder_input")
    x = _conv_bn(inputs, 64, 7, 2, "conv1")
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, count in enumerate(blocks):
        for index in range(count):
            stride = 2 if index == 0 and stage > 0 else 1
            x = block(x, 64 * 2**stage, stride, f"conv{stage + 2}_block{index + 1}")
    return keras.Model(inputs, x, name=name)


def build_resnet34(input_shape) -> keras.Model:
    """ResNet-34 (basic blocks 3-4-6-3), 21.3 M parameters without the classifier."""
    return _resnet(input_shape, basic_block, STAGES["resnet34"], "resnet34")


def build_resnext50(input_shape) -> keras.Model:
    """ResNeXt-50 32x4d (grouped bottlenecks 3-4-6-3), 23.0 M parameters without the classifier."""
    return _resnet(input_shape, resnext_block, STAGES["resnext50"], "resnext50")


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """A `.safetensors` file as numpy arrays (the format is a JSON header then raw tensors)."""
    dtypes = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4"}
    try:
        raw = Path(path).read_bytes()
        (size,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + size])
    except (OSError, ValueError, struct.error) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None
    tensors = {}
    for key, meta in header.items():
        if key == "__metadata__" or meta["dtype"] not in dtypes:
            continue
        start, end = (8 + size + offset for offset in meta["data_offsets"])
        array = np.frombuffer(raw[start:end], dtype=dtypes[meta["dtype"]])
        tensors[key] = array.reshape(meta["shape"]).astype(np.float32)
    return tensors


def _timm_key(layer_name: str) -> str:
    """Keras layer name -> timm module: conv1_conv -> conv1, conv3_block2_1_bn -> layer2.1.bn1."""
    parts = layer_name.split("_")
    if parts[0] == "conv1":
        return "conv1" if parts[1] == "conv" else "bn1"
    stage, block, index, kind = int(parts[0][4:]) - 1, int(parts[1][5:]) - 1, parts[2], parts[3]
    if index == "0":
        return f"layer{stage}.{block}.downsample.{0 if kind == 'conv' else 1}"
    return f"layer{stage}.{block}.{kind}{index}"


def load_timm_weights(encoder: keras.Model, path: Path) -> None:
    """Copy a timm ResNet/ResNeXt checkpoint into `encoder`; every weight must be found."""
    tensors = read_safetensors(path)
    for layer in encoder.layers:
        if not layer.weights:
            continue
        key = _timm_key(layer.name)
        if isinstance(layer, layers.Conv2D):
            values = [tensors.get(f"{key}.weight")]
            values = [None if v is None else v.transpose(2, 3, 1, 0) for v in values]
        else:
            names = ("weight", "bias", "running_mean", "running_var")
            values = [tensors.get(f"{key}.{n}") for n in names]
        expected = [tuple(w.shape) for w in layer.weights]
        if [None if v is None else v.shape for v in values] != expected:
            raise UserError(
                f"{path}: tensor {key!r} is missing or has the wrong shape for {encoder.name} "
                "(expected a timm resnet34 / resnext50_32x4d checkpoint)"
            )
        layer.set_weights(values)
