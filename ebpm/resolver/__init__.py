"""Dependencies: semver ranges, declarations, resolution with resolvelib, and ebpm.lock.

Modules: `ranges` (parse_range), `dependency` (parse_dependencies, spec_hash), `source` (the
Source protocol, MemorySource), `provider` (the resolvelib Provider), `resolve` (resolve,
Resolution), `reporter` (progress hooks), `lockfile` (Lockfile, LockEntry).
"""
