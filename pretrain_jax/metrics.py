"""Where training metrics go: the console progress line, metrics.jsonl and TensorBoard events."""

import json
import logging as std_logging
import os
import time

from absl import logging
from tensorboardX import SummaryWriter

# Libraries whose INFO lines would drown the progress line (jax's "Unable to initialize backend
# 'tpu'", orbax's every save), with the least level of theirs shown by default: warnings, but only
# errors of orbax (whose warnings restate the options it was given, e.g. read-only on every `eval`).
# Errors show without their traceback: a full disk gives orbax's background threads a traceback each,
# and the command's own one line says why.
_CHATTY_LIBRARIES = {"orbax": std_logging.ERROR, "etils": std_logging.WARNING, "grain": std_logging.WARNING,
                     "tensorflow_datasets": std_logging.WARNING, "array_record": std_logging.WARNING,
                     "jax": std_logging.WARNING, "jaxlib": std_logging.WARNING, "absl": std_logging.WARNING}


class _LibraryInfoFilter(std_logging.Filter):
    def filter(self, record: std_logging.LogRecord) -> bool:
        shown = next((level for name, level in _CHATTY_LIBRARIES.items()
                      if f"{os.sep}{name}{os.sep}" in record.pathname), None)
        if shown is None:
            return True
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return record.levelno >= shown


_show_library_tracebacks = False  # what the command line chose (--debug); runs started later keep it


def quiet_library_logs(*, tracebacks: bool | None = None) -> None:
    """Shows this package's INFO lines (progress, eval) and only the warnings and errors of chatty
    libraries, without their tracebacks; with `--verbosity=1` (absl's flag) or more, or `tracebacks`
    (--debug), everything the libraries log. tracebacks=None keeps the last choice (default False)."""
    from absl import flags

    global _show_library_tracebacks
    if tracebacks is None:
        tracebacks = _show_library_tracebacks
    _show_library_tracebacks = tracebacks
    asked = flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].present and flags.FLAGS.verbosity >= 1
    if not asked:
        logging.set_verbosity(logging.INFO)  # (this sets FLAGS.verbosity, so it comes after reading it)
    verbose = tracebacks or asked
    handler = logging.get_absl_handler()  # every logger's records, absl's and the libraries', reach it
    for target in (handler, std_logging.getLogger("absl")):
        filters = [f for f in target.filters if isinstance(f, _LibraryInfoFilter)]
        if verbose:
            for f in filters:
                target.removeFilter(f)
        elif not filters:
            target.addFilter(_LibraryInfoFilter())


METRICS_FILE = "metrics.jsonl"


class MetricsWriter:
    """Writes each record to WORKDIR/metrics.jsonl and TensorBoard (WORKDIR/tensorboard/<split>).

    Each record is one line, flushed as it is written, so a killed process loses no record it wrote;
    `forget_after(step)` drops the records of steps a resumed run will run again.
    """

    def __init__(self, workdir: str, *, is_chief: bool = True):
        self._enabled = is_chief
        if not is_chief:
            return
        os.makedirs(workdir, exist_ok=True)
        self._path = os.path.join(workdir, METRICS_FILE)
        self._jsonl = open(self._path, "a")  # noqa: SIM115 (closed in close())
        self._tb_root = os.path.join(workdir, "tensorboard")
        self._writers: dict[str, SummaryWriter] = {}

    def forget_after(self, step: int) -> None:
        """Rewrites metrics.jsonl without the records of steps after `step` (and without a last line cut
        short by a kill), atomically: the steps a run resumed from `step`'s checkpoint runs again are
        then recorded once, not twice."""
        if not self._enabled:
            return
        self._jsonl.close()
        with open(self._path, "rb") as f:
            lines = f.read().split(b"\n")
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the empty tail, or a line a kill cut short
            if record.get("step", 0) <= step:
                kept.append(line)
        with open(f"{self._path}.tmp", "wb") as f:
            f.write(b"".join(line + b"\n" for line in kept))
        os.replace(f"{self._path}.tmp", self._path)
        self._jsonl = open(self._path, "a")  # noqa: SIM115 (closed in close())

    def write(self, split: str, step: int, scalars: dict[str, float]) -> None:
        if not self._enabled:
            return
        record = {"split": split, "step": step, "time": time.time(), **scalars}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        if split not in self._writers:
            self._writers[split] = SummaryWriter(os.path.join(self._tb_root, split))
        for name, value in scalars.items():
            if isinstance(value, int | float):
                self._writers[split].add_scalar(name, value, step)
        self._writers[split].flush()

    def close(self) -> None:
        if not self._enabled:
            return
        self._jsonl.close()
        for writer in self._writers.values():
            writer.close()


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_line(step: int, num_steps: int, scalars: dict[str, float], tokens_per_sec: float, eta_sec: float) -> str:
    """`step 120/2000 (6%) | loss 5.812 | acc 0.143 | 21.3k tok/s | ETA 4m10s`."""
    parts = [f"step {step}/{num_steps} ({100 * step / num_steps:.0f}%)", f"loss {scalars['loss']:.4f}"]
    if "accuracy" in scalars:
        parts.append(f"acc {scalars['accuracy']:.3f}")
    parts += [f"{tokens_per_sec / 1000:.1f}k tok/s", f"ETA {format_duration(eta_sec)}"]
    return " | ".join(parts)

