"""ebpm: a package manager for eBPF programs."""

__version__ = "0.1.0"
__all__ = ["__version__"]
