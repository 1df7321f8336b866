"""`RestoreMallocThresholds`: TensorFlow's PyDataset feed must not leave every step page-faulting.

The behaviour test runs in a fresh TensorFlow process (glibc's thresholds are process state, and
other tests in this worker may already have set them) with TensorFlow's Eigen CPU kernels (its
oneDNN kernels keep their buffers across steps, so there the effect is small): a small conv net
is fitted from a `PyDataset` twice, first as Keras does by default, then with the callback. The
minor page faults of the last epoch are the measure, not the time, so a busy machine cannot fail
it.
"""

import json
import subprocess
import sys

import keras
import pytest
from conftest import CODE, ENV
from tgssalt.allocator import (
    M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD,
    glibc_mallopt,
    restore_malloc_thresholds,
)

FAULTS_PER_EPOCH = """
import json, resource, numpy as np, keras
from tgssalt.allocator import RestoreMallocThresholds

class Batches(keras.utils.PyDataset):
    def __init__(self, x):
        super().__init__()
        self.x = x
    def __len__(self):
        return len(self.x) // 16
    def __getitem__(self, i):
        x = self.x[i * 16:(i + 1) * 16]
        return x, (x > 0.5).astype("float32")

class Faults(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def on_epoch_end(self, epoch, logs=None):
        self.last = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.start

inputs = keras.Input((48, 48, 1))
hidden = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
hidden = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(hidden)
model = keras.Model(inputs, keras.layers.Conv2D(1, 1)(hidden))
model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
batches = Batches(np.random.default_rng(0).random((48, 48, 48, 1), dtype=np.float32))
faults = {}
for name, extra in (("keras_default", []), ("restored", [RestoreMallocThresholds()])):
    counter = Faults()
    model.fit(batches, epochs=3, verbose=0, callbacks=[*extra, counter])
    faults[name] = counter.last
print(json.dumps(faults))
"""


def test_restore_sets_both_thresholds_to_the_large_tensor_values():
    calls = []
    assert restore_malloc_thresholds(lambda param, value: calls.append((param, value)))
    assert calls == [(M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 64 << 20)]


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow" or glibc_mallopt() is None,
    reason="TensorFlow's generator feed changes glibc's malloc thresholds only",
)
def test_pydataset_epochs_stop_page_faulting_once_thresholds_are_restored():
    run = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_EPOCH],
        capture_output=True,
        text=True,
        env={**ENV, "PYTHONPATH": str(CODE), "TF_ENABLE_ONEDNN_OPTS": "0"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    faults = json.loads(run.stdout.strip().splitlines()[-1])
    # Keras' default: tens of thousands of faults per epoch (activations mmap-ed every step).
    assert faults["keras_default"] > 20_000, faults
    assert faults["restored"] * 5 < faults["keras_default"], faults
