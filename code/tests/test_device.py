"""The run's backend and CPU kernels: the package asks TensorFlow for its oneDNN kernels.

Each case runs a fresh process (TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when imported) and
asks TensorFlow itself whether oneDNN is on, so the test holds on CPUs where TensorFlow's own
default is off (AVX2) as well as where it is on (AVX-512 VNNI and newer).
"""

import subprocess
import sys

import pytest
from conftest import CODE, ENV

ASK = (
    "import tgssalt\n"
    "import keras\n"
    "from tgssalt.device import describe_device, tensorflow_onednn_enabled\n"
    "print(tensorflow_onednn_enabled(), describe_device())\n"
)


def device_line(setting: str | None) -> str:
    env = {k: v for k, v in ENV.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    env["KERAS_BACKEND"] = "tensorflow"
    out = subprocess.run(
        [sys.executable, "-c", ASK], cwd=CODE, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, "True backend tensorflow on cpu (1 thread, oneDNN)"),
        ("0", "False backend tensorflow on cpu (1 thread, Eigen)"),
    ],
)
def test_onednn_is_on_unless_the_user_turns_it_off(setting, expected, monkeypatch):
    monkeypatch.setitem(ENV, "TF_NUM_INTRAOP_THREADS", "1")
    assert device_line(setting) == expected
