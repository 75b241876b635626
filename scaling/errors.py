"""The toolkit's errors.

Every mistake a user can make raises a subclass of :class:`ScalingError` before any work
starts. The message names the bad value and the rule it broke, on one line. The CLI prints
it to stderr and exits with status 2.

::

    ScalingError (ValueError)
    ├── UnknownModelError      a model id or alias that is not registered
    ├── UnknownGPUError        a GPU name that is not in the hardware registry
    ├── InvalidSettingError    a generation setting the model cannot take
    │   ├── DeviceOutOfMemoryError  a setting that ran out of device memory (torch's
    │   │                           OutOfMemoryError or MemoryError, mapped where torch runs)
    │   └── DoesNotFitError    a prediction asked for a GPU whose memory the pipeline does not fit
    │                          (by the memory model of profilers/flops/memory.py), before any work
    ├── DataError              a runs table or import file that breaks the schema
    ├── LawError               a law file that cannot be read, or a fit that cannot be made
    ├── WorkloadError          a workload / sweep YAML file that breaks its schema
    ├── ProfilerError          a FLOP count that cannot be trusted or cannot be made
    │   └── AttentionNotCountedError  attention modules ran but 0 attention FLOP were counted:
    │                                 a bug, never a result
    ├── OutputError            an output path that must not or cannot be written (one of the inputs,
    │   │                      a folder, a device, a read-only folder, a full disk)
    │   └── TableBusyError     a runs table another sweep or measure is writing (its lock is held)
    ├── UnsafeWeightsError     a --weights folder whose weights are pickled (loading them can run code)
    ├── MissingDependencyError an optional package (an extra) that a command needs is not installed
    │   └── MissingMeterDependencyError  also a MeterError: a meter's package (pynvml, codecarbon)
    └── MeterError             a meter that cannot measure here (no GPU, no counter, no permission)
        ├── NoGPUError         a GPU was asked for and none is visible
        ├── UnknownMeterError  a meter name that is not one of the accepted kinds
        ├── UnknownCountryError  a country code CodeCarbon's offline energy-mix table lacks
        └── MissingMeterDependencyError  (see above)
"""

from __future__ import annotations


class ScalingError(ValueError):
    """Base class of every error the toolkit raises on bad input."""


class UnknownModelError(ScalingError):
    """A model id or alias that is not in the registry."""


class UnknownGPUError(ScalingError):
    """A GPU name that is not in the hardware registry."""


class InvalidSettingError(ScalingError):
    """A generation setting the model cannot take (resolution, frames, steps, ...)."""


class DataError(ScalingError):
    """A data file (runs table, CSV import) that breaks the schema."""


class LawError(ScalingError):
    """A law file that cannot be read, or a fit that cannot be identified."""


class WorkloadError(ScalingError):
    """A workload or sweep file that breaks its schema."""


class ProfilerError(ScalingError):
    """A FLOP count that cannot be trusted."""


class MissingDependencyError(ScalingError):
    """An optional package that a command needs is not installed (see :mod:`scaling.extras`)."""


class MeterError(ScalingError):
    """A meter that cannot measure on this machine."""


class NoGPUError(MeterError):
    """A GPU was asked for and none is visible to this process."""


class DeviceOutOfMemoryError(InvalidSettingError):
    """A setting that ran out of device (GPU or host) memory; raised where torch runs, from
    ``torch.OutOfMemoryError`` or ``MemoryError``."""


class DoesNotFitError(InvalidSettingError):
    """A prediction for a GPU whose memory the pipeline does not fit at this setting (weights at
    the precision + the activation estimate of profilers/flops/memory.py, batch included), or fits
    only with model CPU offload, whose cost the law does not model."""


class AttentionNotCountedError(ProfilerError):
    """Attention modules ran but 0 attention FLOP were counted: the kernel escaped the counter."""


class UnknownMeterError(MeterError):
    """A meter name that is not one of the accepted kinds."""


class UnknownCountryError(MeterError):
    """A country ISO code that CodeCarbon's offline energy-mix table does not know."""


class MissingMeterDependencyError(MeterError, MissingDependencyError):
    """A meter's optional package (``pynvml``, ``codecarbon``) is not installed: both a meter
    that cannot measure here and a missing extra."""


class OutputError(ScalingError, OSError):
    """An output path that must not be written (one of the command's inputs, a folder, a device
    or FIFO, an empty path) or cannot be (a read-only folder, a full disk): checked before any
    work where it can be, and an ``OSError`` while writing becomes this, naming the path. It is
    an ``OSError`` too, so that code catching the OS error still catches it."""


class TableBusyError(OutputError):
    """A runs table that another sweep or measure is writing right now (its lock is held)."""


class UnsafeWeightsError(ScalingError):
    """A ``--weights`` folder with pickled weights only (``.bin``, ``.pt``, ``.ckpt``): loading
    them can run code; refused unless ``--allow-pickle`` is given."""
