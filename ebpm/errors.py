"""The one exception tree of ebpm: every error carries a message and a hint for the user."""

from __future__ import annotations

__all__ = [
    "EbpmError",
    "UsageError",
    "InvalidReferenceError",
    "RegistryError",
    "NotFoundError",
    "AuthError",
    "UnreachableError",
    "TimedOutError",
    "OfflineError",
    "DigestMismatchError",
    "TooLargeError",
    "TagExistsError",
    "StoreError",
    "ManifestError",
    "SignatureError",
    "PolicyError",
    "ResolutionError",
    "LockfileError",
    "BuildError",
    "ToolMissingError",
    "LoadError",
    "MissingFeatureError",
    "ArchitectureError",
    "PrivilegeError",
    "DependencyCycleError",
    "VersionConflictError",
    "NoMatchingVersionError",
    "CompileError",
    "WasmError",
    "SandboxViolationError",
    "GitError",
    "UnsafeSourceError",
]


class EbpmError(Exception):
    """Root of all ebpm errors: `message` says what went wrong, `hint` what to do next."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(EbpmError):
    """The command line or an input file is wrong."""

    exit_code = 2


class InvalidReferenceError(UsageError):
    """A package reference could not be parsed."""


class RegistryError(EbpmError):
    """The registry answered with an error; keeps the HTTP status and the spec's error code."""

    def __init__(
        self, message: str, *, hint: str | None = None, status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code


class NotFoundError(RegistryError):
    """An unknown repository, tag, manifest or blob (in the registry or the store)."""


class AuthError(RegistryError):
    """Credentials missing, wrong or insufficient."""


class UnreachableError(RegistryError):
    """The registry could not be reached (connection refused, DNS, timeout)."""


class TimedOutError(UnreachableError):
    """An exchange overran its deadline or fell below the minimum rate (a stalling server)."""


class OfflineError(EbpmError):
    """Offline mode was asked for and the store does not hold what is needed."""


class DigestMismatchError(EbpmError):
    """Content does not match its digest or size."""


class TooLargeError(EbpmError):
    """Something exceeds its size or count cap (EBPM_MAX_*): a manifest, a blob, a package, a
    tag list, an archive, a signature's layers."""


class TagExistsError(EbpmError):
    """A published version tag already points to different content."""


class StoreError(EbpmError):
    """The local store is missing something or is damaged."""


class ManifestError(EbpmError):
    """A manifest, config or package description is malformed or unsupported."""


class SignatureError(EbpmError):
    """A signature is missing, malformed, untrusted or does not match."""


class PolicyError(UsageError):
    """The trust policy file is invalid."""


class ResolutionError(EbpmError):
    """Dependencies could not be resolved (conflict, cycle, missing package)."""


class LockfileError(EbpmError):
    """ebpm.lock is missing, malformed or stale."""


class BuildError(EbpmError):
    """Compiling or packing a package failed."""


class ToolMissingError(EbpmError):
    """An external tool (clang, bpftool, ...) is not installed."""


class LoadError(EbpmError):
    """The kernel refused a program or map; `verifier_log` keeps the verifier's words."""

    def __init__(
        self, message: str, *, hint: str | None = None, verifier_log: str = "",
        errno: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.verifier_log = verifier_log
        self.errno = errno


class MissingFeatureError(LoadError):
    """The running kernel lacks a feature a package needs."""

    def __init__(self, feature: str, *, hint: str | None = None, detail: str = "") -> None:
        msg = f"kernel lacks {feature}" + (f": {detail}" if detail else "")
        super().__init__(msg, hint=hint)
        self.feature = feature


class ArchitectureError(LoadError):
    """A package built for other architectures (`wanted`) than this `machine`'s."""

    def __init__(self, message: str, *, wanted: tuple[str, ...], machine: str,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.wanted = wanted
        self.machine = machine


class PrivilegeError(EbpmError):
    """Not enough privileges (CAP_BPF, CAP_PERFMON or root)."""


class DependencyCycleError(ResolutionError):
    """Packages depend on each other in a loop; `path` lists `name@version` around the loop."""

    def __init__(self, path: tuple[str, ...], *, hint: str | None = None) -> None:
        super().__init__(f"dependency cycle: {' -> '.join(path)}", hint=hint)
        self.path = path


class VersionConflictError(ResolutionError):
    """No version of `package` satisfies everyone; `wanted` pairs each requirer with its range."""

    def __init__(
        self, message: str, *, package: str, wanted: tuple[tuple[str, str], ...],
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.package = package
        self.wanted = wanted


class NoMatchingVersionError(ResolutionError):
    """A package is missing or has no version in range; `chain` is how it came to be required."""

    def __init__(
        self, message: str, *, package: str, range: str, chain: tuple[str, ...],
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.package = package
        self.range = range
        self.chain = chain


class CompileError(BuildError):
    """The compiler rejected a source; `diagnostics` keeps its `file:line:col: error:` lines."""

    def __init__(
        self, message: str, *, hint: str | None = None, diagnostics: tuple[str, ...] = (),
        output: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.diagnostics = diagnostics
        self.output = output


class WasmError(EbpmError):
    """A WebAssembly guest failed: invalid module, missing import, or a trap."""


class SandboxViolationError(WasmError):
    """A WebAssembly guest asked for what its sandbox forbids (a program type, more memory)."""

    def __init__(self, message: str, *, hint: str | None = None, what: str = "") -> None:
        super().__init__(message, hint=hint)
        self.what = what


class GitError(EbpmError):
    """A git dependency could not be fetched, found or checked out."""


class UnsafeSourceError(GitError):
    """A git package holds something ebpm refuses to build: a submodule, a symlink or path
    leaving its directory, a `.git` entry (hooks), or build flags that run foreign code."""
