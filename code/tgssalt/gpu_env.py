"""What `code/gpu_check.py` runs on: backend, devices, precision, versions; and its refusals.

`inspect_environment()` asks the current Keras backend which devices it sees (JAX, TensorFlow or
PyTorch; never a second framework), and reads package versions from their metadata without
importing them. `check_accelerator()` refuses, as one `UserError` line, the two cases where a
GPU was asked for but the backend only sees a CPU: the JAX backend (choosing JAX is choosing the
GPU install, `requirements-gpu.txt`; a CUDA build of JAX that cannot reach the driver falls back
to the CPU with only a log warning) unless `allow_cpu`, and any backend when `require_gpu`.
"""

import importlib.metadata
import platform
import sys

import keras

from .errors import UserError

GPU_PLATFORMS = ("gpu", "cuda", "rocm")
# Distributions whose versions are printed, per backend (the backend's own libraries first).
BACKEND_PACKAGES = {"jax": ("jax", "jaxlib"), "tensorflow": ("tensorflow",), "torch": ("torch",)}
PEER_PACKAGES = ("torch", "segmentation-models-pytorch")


def version(name: str) -> str | None:
    """The installed version of a package, None when it is not installed. Read from its
    distribution's metadata (nothing is imported), else from the module when it is imported
    already under another distribution's name (TensorFlow comes as `tensorflow-cpu`)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        module = sys.modules.get(name.replace("-", "_"))
        return getattr(module, "__version__", None)


def versions(backend: str) -> dict:
    """{name: version or None}: Python, numpy, Keras, the backend's libraries, the smp peer's."""
    names = ("numpy", "keras", *BACKEND_PACKAGES.get(backend, ()), *PEER_PACKAGES)
    return {"python": platform.python_version(), **{n: version(n) for n in dict.fromkeys(names)}}


def backend_devices(backend: str) -> list[dict]:
    """[{"name", "kind"}] of the devices the backend computes on; kind "gpu" or "cpu"."""
    if backend == "jax":
        import jax

        return [
            {
                "name": f"{d.platform}:{d.id} {d.device_kind}",
                "kind": "gpu" if d.platform in GPU_PLATFORMS else d.platform,
            }
            for d in jax.devices()
        ]
    if backend == "tensorflow":
        return _tensorflow_devices()
    if backend == "torch":
        import torch

        gpus = [
            f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())
        ]
        return [{"name": n, "kind": "gpu"} for n in gpus] or [{"name": "cpu", "kind": "cpu"}]
    return [{"name": backend, "kind": "unknown"}]


def _tensorflow_devices() -> list[dict]:
    """TensorFlow's physical devices, GPUs with their model name when TensorFlow reports it."""
    import tensorflow as tf

    found = []
    for device in tf.config.list_physical_devices():
        name = device.name.removeprefix("/physical_device:")
        if device.device_type == "GPU":
            detail = tf.config.experimental.get_device_details(device).get("device_name")
            name = f"{name} {detail}" if detail else name
        found.append({"name": name, "kind": device.device_type.lower()})
    return found


def float32_matmul(backend: str) -> str:
    """How the backend runs float32 matrix products and convolutions on a GPU (TF32 or not)."""
    if backend == "jax":
        import jax

        setting = jax.config.jax_default_matmul_precision
        return f"jax_default_matmul_precision={setting or 'default (TF32 where the GPU has it)'}"
    if backend == "tensorflow":
        import tensorflow as tf

        enabled = tf.config.experimental.tensor_float_32_execution_enabled()
        return f"TF32 {'enabled' if enabled else 'disabled'}"
    if backend == "torch":
        import torch

        return f"torch.get_float32_matmul_precision()={torch.get_float32_matmul_precision()}"
    return "unknown"


def inspect_environment() -> dict:
    """backend, devices, gpu (bool), dtype_policy, float32_matmul and versions, for the report."""
    backend = keras.backend.backend()
    devices = backend_devices(backend)
    return {
        "backend": backend,
        "devices": [d["name"] for d in devices],
        "gpu": any(d["kind"] == "gpu" for d in devices),
        "dtype_policy": keras.config.dtype_policy().name,
        "float32_matmul": float32_matmul(backend),
        "versions": versions(backend),
    }


def check_accelerator(env: dict, allow_cpu: bool, require_gpu: bool) -> None:
    """Refuse (UserError) a JAX backend without a GPU unless `allow_cpu`, and any backend
    without a GPU when `require_gpu`."""
    if env["gpu"]:
        return
    seen = ", ".join(env["devices"])
    if require_gpu:
        raise UserError(f"--require-gpu: backend {env['backend']} sees no GPU, only: {seen}")
    if env["backend"] == "jax" and not allow_cpu:
        raise UserError(
            f"KERAS_BACKEND=jax but JAX sees only a CPU ({seen}): install JAX's CUDA build "
            "(pip install -r requirements-gpu.txt) and check the driver with nvidia-smi, "
            "or pass --allow-cpu to run on the CPU anyway"
        )
