"""Maps: their definition (type, key and value sizes, BTF ids), initial values of global data
before load, and element operations (lookup, update, delete, iteration) once created."""

from __future__ import annotations

import ctypes
import errno
from ctypes import POINTER, c_bool, c_char_p, c_int, c_size_t, c_uint32, c_uint64, c_void_p

from ebpm.errors import LoadError
from ebpm.loader.libbpf.library import check, declare, lib, map_type_name, num_possible_cpus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Map", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "obj_get"]

# flags of bpf_map_update_elem
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

_PERCPU_ALIGN = 8  # bytes: the kernel copies each CPU's value of a per-CPU map 8-byte aligned

_P = c_void_p
declare({
    "bpf_map__name": (c_char_p, [_P]),
    "bpf_map__fd": (c_int, [_P]),
    "bpf_map__type": (c_int, [_P]),
    "bpf_map__key_size": (c_uint32, [_P]),
    "bpf_map__value_size": (c_uint32, [_P]),
    "bpf_map__max_entries": (c_uint32, [_P]),
    "bpf_map__set_max_entries": (c_int, [_P, c_uint32]),
    "bpf_map__is_internal": (c_bool, [_P]),
    "bpf_map__btf_key_type_id": (c_uint32, [_P]),
    "bpf_map__btf_value_type_id": (c_uint32, [_P]),
    "bpf_map__initial_value": (_P, [_P, POINTER(c_size_t)]),
    "bpf_map__set_initial_value": (c_int, [_P, _P, c_size_t]),
    "bpf_map__pin": (c_int, [_P, c_char_p]),
    "bpf_map__unpin": (c_int, [_P, c_char_p]),
    "bpf_map__reuse_fd": (c_int, [_P, c_int]),
    "bpf_obj_get": (c_int, [c_char_p]),
    "bpf_map_lookup_elem": (c_int, [c_int, _P, _P]),
    "bpf_map_update_elem": (c_int, [c_int, _P, _P, c_uint64]),
    "bpf_map_delete_elem": (c_int, [c_int, _P]),
    "bpf_map_get_next_key": (c_int, [c_int, _P, _P]),
})


class Map:
    """One map of an object; element operations work once the object is loaded."""

    def __init__(self, obj: object, ptr: int) -> None:
        self._obj = obj  # the BpfObject that owns the map: kept alive while the map is in use
        self._ptr = ptr
        L = lib()
        self.name: str = L.bpf_map__name(ptr).decode()
        self.internal: bool = bool(L.bpf_map__is_internal(ptr))

    @property
    def type(self) -> int:
        return int(lib().bpf_map__type(self._ptr))

    @property
    def type_name(self) -> str:
        return map_type_name(self.type)

    @property
    def key_size(self) -> int:
        return int(lib().bpf_map__key_size(self._ptr))

    @property
    def value_size(self) -> int:
        return int(lib().bpf_map__value_size(self._ptr))

    @property
    def max_entries(self) -> int:
        return int(lib().bpf_map__max_entries(self._ptr))

    @max_entries.setter
    def max_entries(self, value: int) -> None:
        check(lib().bpf_map__set_max_entries(self._ptr, value), f"map {self.name}: max_entries")

    @property
    def btf_key_type_id(self) -> int:
        return int(lib().bpf_map__btf_key_type_id(self._ptr))

    @property
    def btf_value_type_id(self) -> int:
        return int(lib().bpf_map__btf_value_type_id(self._ptr))

    @property
    def fd(self) -> int:
        return check(lib().bpf_map__fd(self._ptr), f"map {self.name}: not created")

    @property
    def per_cpu(self) -> bool:
        return self.type_name in {"percpu_hash", "percpu_array", "lru_percpu_hash",
                                  "percpu_cgroup_storage"}

    def initial_value(self) -> bytes:
        """The current initial contents of a global-data map (.rodata, .data, .bss)."""
        size = c_size_t(0)
        ptr = lib().bpf_map__initial_value(self._ptr, ctypes.byref(size))
        if not ptr:
            raise LoadError(f"map {self.name}: has no initial value (not a global-data map)")
        return ctypes.string_at(ptr, size.value)

    def set_initial_value(self, data: bytes) -> None:
        """Before load: replace the initial contents (size must match; this sets .rodata)."""
        check(
            lib().bpf_map__set_initial_value(self._ptr, data, len(data)),
            f"map {self.name}: set initial value ({len(data)} bytes)",
        )

    @property
    def cpu_stride(self) -> int:
        """Bytes between two CPUs' values in a per-CPU map's lookup buffer (8-byte aligned)."""
        return (self.value_size + _PERCPU_ALIGN - 1) // _PERCPU_ALIGN * _PERCPU_ALIGN

    def _value_len(self) -> int:
        if self.per_cpu:
            return self.cpu_stride * num_possible_cpus()
        return self.value_size

    def lookup(self, key: bytes) -> bytes | None:
        """The value (for per-CPU maps: all CPUs' values, each padded to 8 bytes) or None."""
        value = ctypes.create_string_buffer(self._value_len())
        ret = lib().bpf_map_lookup_elem(self.fd, key, value)
        if ret == -errno.ENOENT:
            return None
        check(ret, f"map {self.name}: lookup")
        return value.raw

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        check(lib().bpf_map_update_elem(self.fd, key, value, flags), f"map {self.name}: update")

    def delete(self, key: bytes) -> bool:
        ret = lib().bpf_map_delete_elem(self.fd, key)
        if ret == -errno.ENOENT:
            return False
        check(ret, f"map {self.name}: delete")
        return True

    def next_key(self, key: bytes | None) -> bytes | None:
        """The key after `key` (the first key when None), or None at the end."""
        out = ctypes.create_string_buffer(self.key_size)
        ret = lib().bpf_map_get_next_key(self.fd, key, out)
        if ret == -errno.ENOENT:
            return None
        check(ret, f"map {self.name}: next key")
        return out.raw

    def keys(self) -> Iterator[bytes]:
        key = self.next_key(None)
        while key is not None:
            yield key
            key = self.next_key(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def pin(self, path: str) -> None:
        check(lib().bpf_map__pin(self._ptr, path.encode()), f"map {self.name}: pin {path}")

    def unpin(self, path: str) -> None:
        check(lib().bpf_map__unpin(self._ptr, path.encode()), f"map {self.name}: unpin {path}")

    def reuse_fd(self, fd: int) -> None:
        """Before load: use the existing map `fd` (e.g. a pinned one) instead of creating one
        (libbpf keeps its own duplicate; the caller still owns `fd`)."""
        check(lib().bpf_map__reuse_fd(self._ptr, fd), f"map {self.name}: reuse fd {fd}")

    def __repr__(self) -> str:
        return f"Map({self.name!r})"


def obj_get(path: str) -> int:
    """A new fd for the BPF object (map, program, link) pinned at `path` in bpffs."""
    return check(lib().bpf_obj_get(path.encode()), f"pinned object {path}")
