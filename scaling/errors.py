"""The toolkit's errors.

Every mistake a user can make raises a subclass of :class:`ScalingError` before any work
starts. The message names the bad value and the rule it broke, on one line. The CLI prints
it to stderr and exits with status 2.

::

    ScalingError (ValueError)
    ├── UnknownModelError      a model id or alias that is not registered
    ├── UnknownGPUError        a GPU name that is not in the hardware registry
    ├── InvalidSettingError    a generation setting the model cannot take
    ├── DataError              a runs table or import file that breaks the schema
    ├── LawError               a law file that cannot be read, or a fit that cannot be made
    ├── WorkloadError          a workload / sweep YAML file that breaks its schema
    ├── ProfilerError          a FLOP count that cannot be trusted (e.g. attention dropped to 0)
    ├── MissingDependencyError an optional package (an extra) that a command needs is not installed
    └── MeterError             a meter that cannot measure here (no GPU, no counter, no permission)
        └── NoGPUError         a GPU was asked for and none is visible
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
