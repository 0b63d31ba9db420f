/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* libbpf's low-level map API (bpf/bpf.h) for WebAssembly guests, over wasm_bpf_map_operate. */
#ifndef EBPM_WASM_BPF_BPF_H
#define EBPM_WASM_BPF_BPF_H

#include <errno.h>
#include <wasm-bpf.h>

#ifndef BPF_ANY
#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_EXIST 2
#define BPF_F_LOCK 4
#endif

static inline int __wasm_bpf_ret(int ret)
{
	if (ret < 0)
		errno = -ret;
	return ret;
}

static inline int bpf_map_lookup_elem(int fd, const void *key, void *value)
{
	return __wasm_bpf_ret(wasm_bpf_map_operate(fd, WASM_BPF_MAP_LOOKUP_ELEM, (void *)key,
						   value, NULL, 0));
}

static inline int bpf_map_lookup_elem_flags(int fd, const void *key, void *value, __u64 flags)
{
	return __wasm_bpf_ret(wasm_bpf_map_operate(fd, WASM_BPF_MAP_LOOKUP_ELEM, (void *)key,
						   value, NULL, flags));
}

static inline int bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags)
{
	return __wasm_bpf_ret(wasm_bpf_map_operate(fd, WASM_BPF_MAP_UPDATE_ELEM, (void *)key,
						   (void *)value, NULL, flags));
}

static inline int bpf_map_delete_elem(int fd, const void *key)
{
	return __wasm_bpf_ret(wasm_bpf_map_operate(fd, WASM_BPF_MAP_DELETE_ELEM, (void *)key,
						   NULL, NULL, 0));
}

/* key == NULL asks for the first key (the host passes a real NULL to the kernel). */
static inline int bpf_map_get_next_key(int fd, const void *key, void *next_key)
{
	return __wasm_bpf_ret(wasm_bpf_map_operate(fd, WASM_BPF_MAP_GET_NEXT_KEY, (void *)key,
						   NULL, next_key, 0));
}

#endif /* EBPM_WASM_BPF_BPF_H */
