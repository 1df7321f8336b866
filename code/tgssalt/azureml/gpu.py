"""The fold jobs' first step: stop at once, in one line, when JAX cannot use the node's GPU.

    python -m tgssalt.azureml.gpu   (from code/; the jobs run it before train_fold.py)

Without CUDA (a driver or library mismatch, a CPU VM size) JAX would warn and train on the CPU
while the GPU node is paid for. The jobs set `JAX_PLATFORMS=cuda`, so JAX refuses instead, but
its error is a traceback (or, with a CPU-only jaxlib, a bare AssertionError); this says what
happened and what to check.
"""

import os

from ..errors import UserError, run_cli


def check_gpu() -> str:
    """The first JAX device as text when it is a GPU; a `UserError` otherwise."""
    import jax

    platforms = os.environ.get("JAX_PLATFORMS", "")
    try:
        device = jax.devices()[0]
    except Exception as exc:  # noqa: BLE001 - JAX raises RuntimeError or AssertionError here
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(_message(f"JAX could not start CUDA ({reason})", platforms)) from None
    if device.platform != "gpu":
        raise UserError(_message(f"JAX found only a {device.platform} device", platforms))
    return f"GPU check: jax on {device.device_kind} ({len(jax.devices())} device(s))"


def _message(what: str, platforms: str) -> str:
    return (
        f"{what} with JAX_PLATFORMS={platforms or '(unset)'}: stopping rather than training on "
        "the CPU; check that the cluster's VM size has an NVIDIA GPU and that the environment "
        "installs jax[cuda12] (aml_config/environment/conda.yaml)"
    )


def main(argv: list[str] | None = None) -> None:
    """Print the GPU the job trains on, or fail in one line."""
    print(check_gpu())


if __name__ == "__main__":
    run_cli(main)
