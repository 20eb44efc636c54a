"""What a workdir must be before a run writes to it, and moving old runs aside (never deleting)."""

import errno
import os
import time

from pretrain_jax.config_validation import ConfigError


def check_writable(workdir: str) -> None:
    """A directory this process can write in, or a path where one can be made; else a one-line
    ConfigError naming the file in the way or the directory that refuses writing. Nothing is created."""
    path = os.path.abspath(workdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"--workdir={workdir} is a file, not a directory; give a directory")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"--workdir={workdir} lies under {existing}, which is a file; give a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" (its nearest existing parent {existing})"
        cause = errno.EROFS if os.statvfs(existing).f_flag & os.ST_RDONLY else errno.EACCES
        raise ConfigError(f"--workdir={workdir}{where} is not writable: {os.strerror(cause)}")


def check_readable(workdir: str) -> None:
    """An existing directory (read-only commands write nothing, so need nothing more)."""
    if not os.path.isdir(workdir):
        what = "is a file, not a directory" if os.path.exists(workdir) else "does not exist"
        raise ConfigError(f"--workdir={workdir} {what}; give the workdir of a training run")


def os_error_text(error: OSError) -> str:
    """An OSError in one line: its cause, then the file it names (if any)."""
    where = f" ({error.filename})" if error.filename else ""
    return f"{error.strerror or os.strerror(error.errno)}{where}"


def move_aside(workdir: str, names: tuple[str, ...]) -> list[str]:
    """Renames each of `names` in `workdir` that exists to `<name>.before-restart-<time>`; returns the
    new paths. Nothing is deleted."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for name in names:
        source = os.path.join(workdir, name)
        if os.path.exists(source):
            root, extension = os.path.splitext(name)
            target = os.path.join(workdir, f"{root}.before-restart-{stamp}{extension}")
            os.rename(source, target)
            moved.append(target)
    return moved
