"""The exit statuses and the one path by which errors leave the CLI, for the click CLI
(`ebpm.cli.app.run`) and the lean entry (`ebpm.cli.lean`) alike; click-free."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn


__all__ = ["ExitStatus", "abort", "closed_pipe", "echo", "guarded", "setup_logging"]


class ExitStatus:
    """ebpm's exit statuses (plain ints: an IntEnum's creation is ~80 us of every start)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    OUTDATED = 3  # `ebpm outdated` found newer versions (for CI)
    INTERRUPTED = 130


def echo(text: str = "", *, err: bool = False) -> None:
    """A line on stdout (or stderr), flushed, as click.echo writes it."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def abort(message: str, *, hint: str | None = None, code: int = ExitStatus.ERROR) -> NoReturn:
    """The one way a user error leaves the CLI: a line on stderr, a hint, an exit status."""
    echo(f"error: {message}", err=True)
    if hint:
        echo(f"hint: {hint}", err=True)
    sys.exit(code)


def setup_logging(verbose: int) -> None:
    """-v: INFO, -vv: DEBUG (libbpf's log too); else warnings only, as `name: message`
    (`logging` itself imported when a record is written: ebpm.log)."""
    from ebpm import log

    log.setup(verbose)


def guarded(call: Callable[[], Any],
            other: Callable[[Exception], int | None] | None = None) -> int:
    """Run a command; every error leaves as a line and an exit status. `other` may claim an
    exception first (click's own); EBPM_OFFLINE is restored (--offline sets it for one call)."""
    from ebpm.errors import EbpmError

    saved_offline = os.environ.get("EBPM_OFFLINE")
    try:
        call()
        sys.stdout.flush()  # (a reader gone meets us here, not the interpreter as it exits)
    except EbpmError as err:
        abort(err.message, hint=err.hint, code=err.exit_code)
    except KeyboardInterrupt:
        echo("interrupted", err=True)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        return closed_pipe()
    except OSError as err:
        explained = _environment_error(err)
        if explained is None:
            return _unexpected(err)
        abort(explained[0], hint=explained[1])
    except Exception as err:  # the only catch-all
        code = other(err) if other is not None else None
        return _unexpected(err) if code is None else code
    finally:
        if saved_offline is None:
            os.environ.pop("EBPM_OFFLINE", None)
        else:
            os.environ["EBPM_OFFLINE"] = saved_offline
    return ExitStatus.OK


def closed_pipe() -> int:
    """stdout's reader went away (`ebpm list | head -1`): the command ends with 0 and says
    nothing. What is left in stdout's buffer goes to /dev/null, as Python's docs advise (the
    interpreter would flush it at exit into the closed pipe: a second BrokenPipeError)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # (a stdout without a file descriptor: nothing to flush)
        pass
    finally:
        os.close(devnull)
    return ExitStatus.OK


def _environment_error(err: OSError) -> tuple[str, str] | None:
    """A clear message and hint for what the machine, not ebpm, refused: a full disk, a
    permission, a missing directory, a file where a directory belongs (or the reverse), a
    symbolic link loop, a read-only file system. The message names the path (the file being
    written, not its temp name); the hint names EBPM_HOME, EBPM_CONFIG, EBPM_DATA or
    EBPM_SYSTEM_CONFIG only for a path in that variable's directory, else the path itself."""
    import errno

    path = _written(err.filename)
    code = err.errno
    if code == errno.EEXIST and path and os.path.isdir(path):
        return (f"already exists: {path}", "remove it, or give another name")
    if code in (errno.ENOTDIR, errno.EEXIST) and path:
        code, path = errno.ENOTDIR, _not_a_directory(path)
    where = f": {path}" if path else ""
    variable = _variable(path) if path else None
    # what to do about the place: the variable that chose it, or the path the user gave
    elsewhere = (f"point {variable} at another directory" if variable
                 else "give another path" if path else "")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on device{where}",
                "free some space (`ebpm cache prune` drops unused blobs); nothing half-written "
                "was kept")
    if code in (errno.EACCES, errno.EPERM):
        if variable:
            return (f"permission denied{where}",
                    f"{variable}'s directory belongs to another user (root?): run as that "
                    f"user, or point {variable} at a directory you own")
        if path:
            return (f"permission denied{where}",
                    "this user may not write or read there: give another path, or run as a "
                    "user who may")
        return ("permission denied",
                "a file ebpm needs belongs to another user (root?): run as that user, or point "
                "EBPM_HOME / EBPM_CONFIG / EBPM_DATA at directories you own")
    if code == errno.ENOTDIR and path:
        return (f"not a directory{where}",
                f"a file stands where a directory belongs: move it away, or {elsewhere}")
    if code == errno.EISDIR and path:
        return (f"is a directory{where}",
                f"a directory stands where a file belongs: move it away, or {elsewhere}")
    if code == errno.ENOENT and path:
        return (f"no such file or directory{where}",
                "a directory on that path is missing or takes no new entries (as in /proc "
                f"and /sys): {elsewhere}")
    if code == errno.ELOOP and path:
        return (f"too many levels of symbolic links{where}",
                "a symbolic link on that path leads back to itself: fix or remove it")
    if code == errno.ENAMETOOLONG:
        return (f"file name too long{where}",
                "a file name is at most 255 bytes and a path 4096: shorten it")
    if code == errno.EMLINK and path:
        return (f"too many links{where}",
                f"its directory holds as many entries as its file system allows: {elsewhere}")
    if code == errno.EROFS:
        if variable or not path:
            return (f"read-only file system{where}",
                    f"point {variable or 'EBPM_HOME'} at a writable directory")
        return (f"read-only file system{where}",
                f"{os.path.dirname(path) or '.'} takes no writes: remount it read-write, or "
                "work in a writable directory")
    return None


# the directories ebpm's environment variables choose (ebpm.config), for the hint to name one
_VARIABLES = (("EBPM_HOME", "store_home"), ("EBPM_CONFIG", "config_dir"),
              ("EBPM_DATA", "data_dir"), ("EBPM_SYSTEM_CONFIG", "system_config_dir"))


def _written(filename: object) -> str | None:
    """`filename` as the user knows it: an `ebpm.files` temp file (`.NAME.HEX.tmp`) as the
    file it becomes (`NAME`, beside it)."""
    if not isinstance(filename, (str, bytes, os.PathLike)):
        return None
    path = os.fsdecode(filename)
    directory, name = os.path.split(path)
    if name.startswith(".") and name.endswith(".tmp"):
        target, _, random = name[1:-4].rpartition(".")
        if target and len(random) == 12 and all(c in "0123456789abcdef" for c in random):
            return os.path.join(directory, target)
    return path


def _not_a_directory(path: str) -> str:
    """The file on `path` that stands where a directory belongs (`path` itself if none)."""
    parent = os.path.dirname(path)
    while parent and parent != os.path.dirname(parent):
        if os.path.lexists(parent) and not os.path.isdir(parent):
            path = parent
        parent = os.path.dirname(parent)
    return path


def _variable(path: str) -> str | None:
    """The environment variable whose directory holds `path` (the innermost), if any."""
    from ebpm import config

    where = os.path.abspath(path)
    best: tuple[int, str] | None = None
    for name, function in _VARIABLES:
        directory = os.path.abspath(getattr(config, function)())
        if where == directory or where.startswith(directory.rstrip("/") + "/"):
            if best is None or len(directory) > best[0]:
                best = (len(directory), name)
    return best[1] if best else None


def _unexpected(err: BaseException) -> int:
    from ebpm import config

    if config.debug():
        raise err
    echo(f"error: unexpected {type(err).__name__}: {err}", err=True)
    echo("hint: run again with EBPM_DEBUG=1 for a traceback, and report it", err=True)
    return ExitStatus.ERROR
