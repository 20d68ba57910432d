"""One exception type per failure domain; every message is one line that says what to do."""


class FlashBenchError(Exception):
    """Base class: the CLI prints `error: <message>` and exits non-zero."""


class VideoError(FlashBenchError):
    """A video cannot be read, written or is shorter/different from what is required."""


class BenchmarkError(FlashBenchError):
    """A benchmark folder is missing files or is inconsistent."""


class WeightsError(FlashBenchError):
    """A weight file is missing, corrupt or cannot be fetched."""


class GenerationError(FlashBenchError):
    """A generator returned an invalid video (wrong shape, NaN, wrong dtype)."""
