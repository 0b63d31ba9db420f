"""The loader: libbpf through ctypes, BTF, event decoding, sessions (load, attach, poll, close).

Modules: `libbpf` (the bindings, one module per kernel concept), `btf` and `elf` (pure readers,
shared with the build), `decode` (compiled event decoders), `args` (package flags -> .rodata),
`environment` (privileges, BTF, tracefs), `attach` (explicit attach targets), `events` (ring and
perf buffer streams), `snapshots` (result maps), `session` (a loaded package with fallback
between alternatives), `hist` (log2 histograms as text), `wasm` (the wasm-bpf host). Nothing
here imports `ebpm.oci`.
"""
