"""Keep glibc's malloc fast while Keras' TensorFlow trainer feeds a `PyDataset`.

Keras' TensorFlow trainer wraps a `keras.utils.PyDataset` in `tf.data.Dataset.from_generator`.
When that generator op starts, TensorFlow (2.21) sets glibc's `M_TRIM_THRESHOLD` to 128 KiB
(it logs "Memory patch applied"). Setting any malloc threshold turns off glibc's dynamic mmap
threshold, so from then on every activation over 128 KiB is mmap-ed, page-faulted and unmapped
again at each training step: on a 2-core CPU the demo U-Net's steps took 2.6x as long as when
fed from arrays, and `best.json`'s 1.9x (`code/benchmarks/input_feed.py`); a process that
traced the generator first stayed slow for every later fit. `RestoreMallocThresholds` puts back
the thresholds glibc's own dynamic rule settles on for large tensors (mmap 32 MiB, trim twice
that) once the feed has started. Only allocation changes; results are bit for bit the same.

This hits TensorFlow's Eigen CPU kernels. Its oneDNN kernels, which the package asks for
(`tgssalt/__init__.py`), keep their buffers across steps: with them `best.json`'s steps fed by
Keras' default took 1.03x the time of steps fed from arrays, so the callback matters where a user
turns oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`).
"""

import ctypes
import ctypes.util
import functools
import platform

import keras

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # the trim threshold glibc pairs with it


@functools.cache
def glibc_mallopt():
    """glibc's `mallopt` function, or None where the C library is not glibc. Looked up once:
    `find_library` and `libc_ver` read files (and may run `ldconfig`), and the callback asks
    every epoch."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt


def restore_malloc_thresholds(mallopt=None) -> bool:
    """Set glibc's mmap and trim thresholds to the large-tensor values; False where not glibc."""
    mallopt = mallopt or glibc_mallopt()
    if mallopt is None:
        return False
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return True


class RestoreMallocThresholds(keras.callbacks.Callback):
    """After the first batch of each epoch (the generator op has started by then), undo
    TensorFlow's malloc setting; does nothing on other backends, which feed a PyDataset in
    Python."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0 and keras.backend.backend() == "tensorflow":
            restore_malloc_thresholds()
