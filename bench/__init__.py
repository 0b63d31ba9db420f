"""Benchmarks: `make bench` runs every bench/<name>.py that has main() -> list[str]."""
