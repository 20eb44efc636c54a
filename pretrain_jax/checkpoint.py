"""Orbax checkpoints of one run: train state, data-loader state and run metadata, saved together.

Layout: WORKDIR/checkpoints/<step>/{state, loader, meta}. Saves are asynchronous; a save that was
interrupted leaves a temporary directory that orbax ignores (and cleans up), so the latest
*committed* step is always the one restored.

A run never silently starts over. At restore, a step whose files are provably damaged (a file of the
layout missing, empty, or not the JSON it must be: `damage`) is skipped for the previous one, and set
aside (renamed, never deleted) only once an older step has restored, so that step can be redone. Any
other failure to restore (a read error, memory, a corrupted array) stops with `CheckpointError`,
every checkpoint left in place: it may pass, and throwing hours of training away on it would not.
"""

import contextlib
import errno
import json
import os
import time

import jax
import orbax.checkpoint as ocp
from absl import logging

from pretrain_jax import workdirs

# Files a committed step holds, relative to its directory; the JSON ones must parse.
_JSON_FILES = ("_CHECKPOINT_METADATA", "state/_METADATA", "loader/metadata", "meta/metadata")
_DATA_FILES = ("state/manifest.ocdbt",)
# Errors of the disk, not of the checkpoint: said in one line (the cause, then where).
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM)
# Room asked of the disk before a save, over the size of the last one.
SPACE_MARGIN = 1.25


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored or written; the message is one line for the user."""


class Checkpointer:
    """Thin wrapper over `ocp.CheckpointManager` with the three items of a pretrain_jax run."""

    def __init__(self, workdir: str, *, keep: int = 3, keep_every: int = 0, async_save: bool = True,
                 read_only: bool = False):
        """keep: most recent checkpoints kept; keep_every: also keep every step divisible by it (0 = none).
        read_only: restore only; nothing in the workdir is created, cleaned up, renamed or written."""
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.read_only = read_only
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            keep_period=keep_every or None,
            enable_async_checkpointing=async_save and not read_only,
            cleanup_tmp_directories=not read_only,
            create=not read_only,
            read_only=read_only,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "loader", "meta"))
        self._saving: int | None = None  # The step of a save that may still be in flight.

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state, loader_state: dict, meta: dict) -> None:
        """Starts an (async) save of `state` (a pytree of jax.Arrays) with JSON loader state and metadata.

        Raises CheckpointError when this save, or the one before it still in flight, cannot be written.
        """
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            loader=ocp.args.JsonSave(loader_state),
            meta=ocp.args.JsonSave(meta),
        )
        with self._writing(step):
            self._check_space(step, state)
            self._manager.save(step, args=args, force=True)
        self._saving = step

    def _check_space(self, step: int, state) -> None:
        """Refuses a save the disk has no room for, before orbax starts it: a save that runs out of
        space part-way fails in a dozen background threads at once, each printing a traceback. The
        room a save takes is that of the newest committed step (the state's bytes, twice, before the
        first: per-array metadata and per-shard chunks make it larger than the arrays). A save still
        in flight is finished first when the room is short, so it is kept."""
        steps = committed_steps(os.path.dirname(self.directory))
        if steps:
            size = _disk_usage(os.path.join(self.directory, str(steps[-1])))
        else:
            size = 2 * sum(shard.data.nbytes for leaf in jax.tree.leaves(state) if isinstance(leaf, jax.Array)
                           for shard in leaf.addressable_shards if shard.replica_id == 0)
        needed = int(size * SPACE_MARGIN) + (1 << 20)
        if self._saving is not None and self._free_bytes() < 2 * needed:
            self._manager.wait_until_finished()  # Its unwritten bytes count against the room left.
            self._saving = None
        free = self._free_bytes()
        if free < needed:
            raise CheckpointError(
                f"writing checkpoint step {step} to {self.directory} needs about {needed / 2**20:.1f} MiB and the"
                f" disk has {free / 2**20:.1f} MiB free: {os.strerror(errno.ENOSPC)}; the steps saved before it are"
                " intact (free some space, or lower train.keep_checkpoints, then run again to resume)")

    def _free_bytes(self) -> int:
        disk = os.statvfs(self.directory)
        return disk.f_bavail * disk.f_frsize

    @contextlib.contextmanager
    def _writing(self, step: int | None):
        """Turns a failed write (of `step`, or of the save still in flight) into one CheckpointError."""
        try:
            yield
        except CheckpointError:
            self._saving = None
            raise
        except Exception as error:
            steps = " or ".join(str(s) for s in dict.fromkeys(s for s in (self._saving, step) if s is not None))
            self._saving = None
            raise CheckpointError(f"writing checkpoint step {steps} to {self.directory} failed: {describe(error)};"
                                  " the steps saved before it are intact") from error

    def restore(self, step: int, abstract_state) -> tuple[object, dict, dict]:
        """Restores onto `abstract_state` (ShapeDtypeStructs carrying the target shardings)."""
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            loader=ocp.args.JsonRestore(),
            meta=ocp.args.JsonRestore(),
        )
        restored = self._manager.restore(step, args=args)
        logging.info("restored checkpoint step %d from %s", step, self.directory)
        return restored.state, restored.loader, restored.meta

    def damage(self, step: int) -> str | None:
        """What proves step `step` damaged (a file missing, empty, or not valid JSON), or None."""
        root = os.path.join(self.directory, str(step))
        for name in _JSON_FILES + _DATA_FILES:
            path = os.path.join(root, name)
            if not os.path.isfile(path):
                return f"{name} is missing"
            if os.path.getsize(path) == 0:
                return f"{name} is empty"
            if name in _JSON_FILES:
                try:
                    with open(path, "rb") as f:
                        json.loads(f.read())
                except (ValueError, UnicodeDecodeError):
                    return f"{name} is not valid JSON"
        return None

    def restore_latest_good(self, abstract_state) -> tuple[int, object, dict, dict] | None:
        """Restores the newest checkpoint that is not provably damaged; None when there is none at all.

        Damaged newer steps are skipped with a warning naming them; once an older step has restored
        they are renamed aside (not in read-only mode), so training can redo them. Raises
        CheckpointError, leaving every checkpoint in place, when no step is undamaged, or when an
        undamaged step fails to restore.
        """
        damaged = []
        for step in sorted(self.all_steps(), reverse=True):
            problem = self.damage(step)
            if problem:
                damaged.append((step, problem))
                logging.warning("checkpoint step %d in %s is damaged (%s); trying the one before", step,
                                self.directory, problem)
                continue
            try:
                state, loader_state, meta = self.restore(step, abstract_state)
            except Exception as error:  # noqa: BLE001 (every failure is said, and nothing is touched)
                raise CheckpointError(
                    f"checkpoint step {step} in {self.directory} could not be restored: {describe(error)}; every"
                    " checkpoint was left in place: run again once the cause is fixed, or move that step's"
                    " directory aside to resume from the one before") from error
            if not self.read_only:
                for bad, _ in damaged:
                    logging.warning("checkpoint step %d set aside as %s; resuming from step %d", bad,
                                    self._set_aside(bad), step)
            return step, state, loader_state, meta
        if damaged:
            listed = ", ".join(f"step {step} ({problem})" for step, problem in damaged)
            raise CheckpointError(
                f"no checkpoint in {self.directory} can be restored: {listed}; every checkpoint was left in"
                " place. Start over in a new --workdir, or here with --config.train.restart=True")
        return None

    def _set_aside(self, step: int) -> str:
        """Renames a damaged step out of orbax's view (nothing is deleted), so it can be redone."""
        source = os.path.join(self.directory, str(step))
        target = f"{source}.damaged-{int(time.time())}"
        if jax.process_index() == 0:
            os.rename(source, target)
        self._manager.reload()
        return target

    def wait(self) -> None:
        """Waits for a save in flight; raises CheckpointError if it could not be written."""
        with self._writing(None):
            self._manager.wait_until_finished()
        self._saving = None

    def close(self) -> None:
        self._manager.close()


def describe(error: BaseException) -> str:
    """The cause of an error in one line: the innermost OSError's strerror and file if there is one
    (orbax wraps a full disk in several layers), else the error's first line."""
    seen, current = set(), error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            return workdirs.os_error_text(current)
        current = current.__cause__ or current.__context__
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    for number in DISK_ERRNOS:  # A C++ layer (tensorstore) may only name the errno in its text.
        if os.strerror(number) in str(error):
            return os.strerror(number)
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def _disk_usage(directory: str) -> int:
    """Bytes the files under `directory` take on disk (allocated blocks)."""
    return sum(os.stat(os.path.join(root, name)).st_blocks * 512
               for root, _, files in os.walk(directory) for name in files)


def committed_steps(workdir: str) -> list[int]:
    """The steps of WORKDIR/checkpoints that orbax committed (directories named by a number), read
    from the directory alone: nothing is created or changed."""
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        return []
    return sorted(int(name) for name in os.listdir(directory)
                  if name.isdigit() and os.path.isdir(os.path.join(directory, name)))


def latest_committed_step(workdir: str) -> int | None:
    steps = committed_steps(workdir)
    return steps[-1] if steps else None


def read_meta(workdir: str, step: int) -> dict:
    """The run metadata saved with a step ({} when it cannot be read: restore says why)."""
    try:
        with open(os.path.join(workdir, "checkpoints", str(step), "meta", "metadata"), "rb") as f:
            meta = json.loads(f.read())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}

