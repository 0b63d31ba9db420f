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

/* The host returns Linux errno values; the guest's <errno.h> is WASI's, which numbers them
 * differently (EINTR is 27 there, 4 on Linux): translate, so `err == -EINTR` works. */
static inline int __wasm_bpf_errno(int linux_errno)
{
	switch (linux_errno) {
	case 1: return EPERM;
	case 2: return ENOENT;
	case 3: return ESRCH;
	case 4: return EINTR;
	case 5: return EIO;
	case 6: return ENXIO;
	case 7: return E2BIG;
	case 8: return ENOEXEC;
	case 9: return EBADF;
	case 11: return EAGAIN;
	case 12: return ENOMEM;
	case 13: return EACCES;
	case 14: return EFAULT;
	case 16: return EBUSY;
	case 17: return EEXIST;
	case 19: return ENODEV;
	case 20: return ENOTDIR;
	case 21: return EISDIR;
	case 22: return EINVAL;
	case 24: return EMFILE;
	case 28: return ENOSPC;
	case 34: return ERANGE;
	case 36: return ENAMETOOLONG;
	case 38: return ENOSYS;
	case 40: return ELOOP;
	case 95: return EOPNOTSUPP;
	case 110: return ETIMEDOUT;
	case 125: return ECANCELED;
	case 524: return EOPNOTSUPP; /* the kernel's internal ENOTSUPP */
	default: return EINVAL;
	}
}

/* A host return value as libbpf returns it: >= 0 unchanged, else -errno (and errno set). */
static inline int __wasm_bpf_ret(int ret)
{
	if (ret >= 0)
		return ret;
	errno = __wasm_bpf_errno(-ret);
	return -errno;
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
