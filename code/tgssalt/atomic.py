"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A crash never leaves a file that looks complete but is not.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `target` if the block succeeds.

    The temporary name keeps the target's suffix, so libraries that pick a format by extension
    (`.keras`, `.png`, `.npz`, Keras' `.weights.h5`) still do.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".weights.h5" if target.name.endswith(".weights.h5") else target.suffix
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name.removesuffix(suffix)}.", suffix=f".tmp{suffix}", dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with contextlib.suppress(OSError):  # mkstemp makes 0600 files; use normal permissions
            os.chmod(tmp_path, 0o666 & ~_umask())  # (blob mounts may not support chmod)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write `text` to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
