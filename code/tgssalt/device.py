"""Which Keras backend and device a run uses, said once at the start of training.

On a CPU, TensorFlow's results depend on its thread count (reductions split across threads add
in another order), on its kernels (oneDNN or Eigen) and on the CPU's instruction set (oneDNN
picks its kernels by it): a run repeats bit for bit only with all three the same, so the
announcement names the thread count and the kernels.
"""

import importlib.util
import os

import keras


def describe_device() -> str:
    """e.g. 'backend jax on gpu (NVIDIA H100)' or 'backend tensorflow on cpu'."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"backend jax on {device.platform} ({device.device_kind})"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return f"backend tensorflow on gpu ({gpus[0].name})"
        threads = tensorflow_cpu_threads()
        kernels = "oneDNN" if tensorflow_onednn_enabled() else "Eigen"
        return f"backend tensorflow on cpu ({threads} thread{'s' * (threads != 1)}, {kernels})"
    if backend == "torch":
        import torch

        return f"backend torch on {'cuda' if torch.cuda.is_available() else 'cpu'}"
    return f"backend {backend}"


def tensorflow_cpu_threads() -> int:
    """Threads TensorFlow's CPU kernels use: TF_NUM_INTRAOP_THREADS, else one per usable core."""
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads()
    threads = threads or int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0") or 0)
    return threads if threads > 0 else usable_cores()


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS says, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def tensorflow_onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN CPU kernels (fixed when it was imported; the package
    asks for them, `tgssalt/__init__.py`). TensorFlow has no public call for it: where its
    private one is gone, the environment variable TensorFlow read says it."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("1", "true")


def tensorboard_available() -> bool:
    """Keras' TensorBoard callback writes through `tensorflow.summary`, on any backend."""
    return all(importlib.util.find_spec(m) for m in ("tensorflow", "tensorboard"))


def jit_compile_setting() -> bool | str:
    """XLA for training: Keras' "auto" everywhere except TensorFlow without a GPU.

    On a CPU, TensorFlow's XLA path trained this U-Net about 30x slower than its oneDNN kernels
    (`code/benchmarks/model_speed.py`), while JAX always compiles with XLA.
    """
    if keras.backend.backend() != "tensorflow":
        return "auto"
    import tensorflow as tf

    return "auto" if tf.config.list_physical_devices("GPU") else False
