"""The exit statuses and the one path by which errors leave the CLI, for the click CLI
(`ebpm.cli.app.run`) and the lean entry (`ebpm.cli.lean`) alike; click-free."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn


__all__ = ["ExitStatus", "abort", "echo", "guarded", "setup_logging"]


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
    except EbpmError as err:
        abort(err.message, hint=err.hint, code=err.exit_code)
    except KeyboardInterrupt:
        echo("interrupted", err=True)
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        return ExitStatus.OK
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


def _environment_error(err: OSError) -> tuple[str, str] | None:
    """A clear message and hint for what the machine, not ebpm, refused: a full disk, a
    permission, a file where a directory belongs, a read-only file system."""
    import errno

    where = f": {err.filename}" if err.filename else ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on device{where}",
                "free some space (`ebpm cache prune` drops unused blobs); nothing half-written "
                "was kept")
    if err.errno in (errno.EACCES, errno.EPERM):
        return (f"permission denied{where}",
                "the store or config belongs to another user (root?): run as that user, or "
                "point EBPM_HOME / EBPM_CONFIG at a directory you own")
    if err.errno in (errno.ENOTDIR, errno.EEXIST) and err.filename:
        return (f"not a directory{where}",
                "a file stands where that path needs a directory: check the path given "
                "(and EBPM_HOME, EBPM_CONFIG, which must name directories or nothing yet)")
    if err.errno == errno.ENAMETOOLONG:
        return (f"file name too long{where}",
                "a file name is at most 255 bytes and a path 4096: shorten it")
    if err.errno == errno.EROFS:
        return (f"read-only file system{where}",
                "point EBPM_HOME at a writable directory")
    return None


def _unexpected(err: BaseException) -> int:
    from ebpm import config

    if config.debug():
        raise err
    echo(f"error: unexpected {type(err).__name__}: {err}", err=True)
    echo("hint: run again with EBPM_DEBUG=1 for a traceback, and report it", err=True)
    return ExitStatus.ERROR
