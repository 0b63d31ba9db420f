/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The wasm-bpf host ABI, as imported by a WebAssembly guest (module "wasm_bpf").
 *
 * Part of ebpm's guest SDK: these are exactly the imports of the upstream wasm-bpf runtimes
 * (eunomia-bpf/wasm-bpf), so a guest built with this SDK runs on them too, unless it calls
 * libbpf_num_possible_cpus(), which imports ebpm's one extra function (module "ebpm").
 */
#ifndef EBPM_WASM_BPF_H
#define EBPM_WASM_BPF_H

#include <stddef.h>
#include <stdint.h>

#ifndef __wasm32__
#error "wasm-bpf.h is for WebAssembly guests: compile with clang --target=wasm32-wasi"
#endif

typedef uint8_t __u8;
typedef int8_t __s8;
typedef uint16_t __u16;
typedef int16_t __s16;
typedef uint32_t __u32;
typedef int32_t __s32;
typedef uint64_t __u64;
typedef int64_t __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u16 __le16;
typedef __u32 __le32;
typedef __u64 __le64;

#define WASM_BPF_IMPORT(name) __attribute__((import_module("wasm_bpf"), import_name(#name)))

/* Bpf commands understood by wasm_bpf_map_operate (the kernel's enum bpf_cmd numbers). */
#define WASM_BPF_MAP_LOOKUP_ELEM 1
#define WASM_BPF_MAP_UPDATE_ELEM 2
#define WASM_BPF_MAP_DELETE_ELEM 3
#define WASM_BPF_MAP_GET_NEXT_KEY 4

/* Open and load a whole BPF ELF object; a nonzero handle, 0 on failure. */
WASM_BPF_IMPORT(wasm_load_bpf_object)
uint64_t wasm_load_bpf_object(const void *obj_buf, int obj_buf_sz);

/* Destroy the object's links and close it. */
WASM_BPF_IMPORT(wasm_close_bpf_object)
int wasm_close_bpf_object(uint64_t obj);

/* Attach program `name`; NULL or "" target: by its section; xdp: interface; cgroup: path. */
WASM_BPF_IMPORT(wasm_attach_bpf_program)
int wasm_attach_bpf_program(uint64_t obj, const char *name, const char *attach_target);

/* Poll the ring/perf buffer map `fd`; every event is copied to `data` (at most max_size bytes)
 * and passed to sample_func(ctx, data, size), a function of the guest's table. */
WASM_BPF_IMPORT(wasm_bpf_buffer_poll)
int wasm_bpf_buffer_poll(uint64_t obj, int fd, int32_t sample_func, uint32_t ctx, void *data,
			 int max_size, int timeout_ms);

/* The host fd of map `name`, negative on failure. */
WASM_BPF_IMPORT(wasm_bpf_map_fd_by_name)
int wasm_bpf_map_fd_by_name(uint64_t obj, const char *name);

/* A bpf(2) map command on guest buffers; 0 or a negative errno. */
WASM_BPF_IMPORT(wasm_bpf_map_operate)
int wasm_bpf_map_operate(int fd, int cmd, void *key, void *value, void *next_key,
			 uint64_t flags);

/* ebpm's extension (not in upstream hosts): the number of possible CPUs of the host. */
__attribute__((import_module("ebpm"), import_name("num_possible_cpus")))
int ebpm_num_possible_cpus(void);

#endif /* EBPM_WASM_BPF_H */
