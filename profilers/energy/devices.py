"""The device a measurement runs on: which one, waiting for it, and its out-of-memory errors.

torch is imported inside the functions: nothing on the predict path imports this module's
dependencies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from scaling.errors import DeviceOutOfMemoryError, InvalidSettingError, NoGPUError

__all__ = ["out_of_memory_as_error", "resolve_device", "sync_device"]


def resolve_device(device: str | None = "auto") -> str:
    """``auto`` -> ``cuda`` when a CUDA GPU is visible, else ``cpu``; ``cuda`` without one
    raises :class:`NoGPUError` saying what to do."""
    text = (device or "auto").strip().lower()
    if text in ("cpu", "mps"):
        return text
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise NoGPUError(
                f"`device` {device!r}: no CUDA GPU is visible to this process (torch "
                f"{torch.__version__}, CUDA_VISIBLE_DEVICES may hide it); run on a GPU machine, "
                "or pass --device cpu to run on the CPU with estimated energies"
            )
        index = text.split(":", 1)[1] if ":" in text else "0"
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise NoGPUError(f"`device` {device!r}: this process sees {torch.cuda.device_count()} GPU(s)")
        return text
    raise InvalidSettingError(f"`device` {device!r} is unknown: use auto, cuda, cuda:N or cpu")


def sync_device(device: str) -> None:
    """Wait until the work queued on ``device`` is done (CPU work is synchronous)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device == "mps":
        torch.mps.synchronize()


@contextmanager
def out_of_memory_as_error(where: str, what: str) -> Iterator[None]:
    """Run a block of work on a device; running out of memory there raises
    :class:`~scaling.errors.DeviceOutOfMemoryError` naming ``what`` ran out on ``where``.

    The torch boundary: ``torch.OutOfMemoryError`` (CUDA and MPS allocations;
    ``torch.cuda.OutOfMemoryError`` is the same class) and Python's ``MemoryError`` (host
    memory). Any other error passes through unchanged.
    """
    import torch

    try:
        yield
    except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DeviceOutOfMemoryError(
            f"out of memory on {where} for {what}: try a smaller resolution, fewer frames or a smaller batch, "
            f"a lower precision, or a GPU with more memory ({detail})"
        ) from exc
