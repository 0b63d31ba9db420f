/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * libbpf's skeleton API for WebAssembly guests, implemented over the wasm_bpf host imports.
 *
 * The ordinary output of `bpftool gen skeleton` (bpftool 7.x, libbpf 1.x skeleton layout)
 * compiles against this header for wasm32-wasi. The embedded ELF is copied at open; the
 * skeleton's rodata/data pointers point into that copy, so values set before load travel to
 * the kernel with the object. After load they are not kernel-backed (no mmap in a guest):
 * read a global's live value with bpf_map_lookup_elem on the section's map, key 0.
 *
 * Not available in a guest: per-program/map setters before load, detaching one link (links
 * live until the object is destroyed), BPF links other than auto-attach/xdp/cgroup targets.
 */
#ifndef EBPM_WASM_BPF_LIBBPF_H
#define EBPM_WASM_BPF_LIBBPF_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasm-bpf.h>
#include <bpf/bpf.h>

#define LIBBPF_API static inline
#define LIBBPF_OPTS(TYPE, NAME, ...)                                                         \
	struct TYPE NAME = ({                                                                \
		memset(&NAME, 0, sizeof(struct TYPE));                                       \
		(struct TYPE){ .sz = sizeof(struct TYPE), __VA_ARGS__ };                     \
	})
#define DECLARE_LIBBPF_OPTS LIBBPF_OPTS

/* ---- objects, maps, programs, links (guest-side bookkeeping) ---- */

struct bpf_object;

struct bpf_map {
	struct bpf_object *obj;
	const char *name;
	int fd;
	void *bss; /* zeroed storage behind a .bss pointer */
};

struct bpf_program {
	struct bpf_object *obj;
	const char *name;
};

struct bpf_link {
	struct bpf_program *prog;
};

struct bpf_object {
	uint64_t handle; /* the host's, 0 until loaded */
	const char *name;
	unsigned char *elf; /* our copy of the embedded ELF */
	size_t elf_sz;
	int map_cnt;
	struct bpf_map *maps;
	int prog_cnt;
	struct bpf_program *progs;
	struct bpf_link *links;
	struct bpf_object *next;
};

struct bpf_object_open_opts {
	size_t sz;
	const char *object_name;
	bool relaxed_maps;
	const char *pin_root_path;
	long : 0;
	const char *kconfig;
	const char *btf_custom_path;
	char *kernel_log_buf;
	size_t kernel_log_size;
	__u32 kernel_log_level;
	size_t : 0;
};

/* The skeleton layout that bpftool emits (libbpf 1.x). */
struct bpf_map_skeleton {
	const char *name;
	struct bpf_map **map;
	void **mmaped;
};

struct bpf_prog_skeleton {
	const char *name;
	struct bpf_program **prog;
	struct bpf_link **link;
};

struct bpf_object_skeleton {
	size_t sz;
	const char *name;
	const void *data;
	size_t data_sz;
	struct bpf_object **obj;
	int map_cnt;
	int map_skel_sz;
	struct bpf_map_skeleton *maps;
	int prog_cnt;
	int prog_skel_sz;
	struct bpf_prog_skeleton *progs;
};

static struct bpf_object *__wasm_bpf_objects;

static inline __u64 __wasm_bpf_rd(const unsigned char *p, int n)
{
	__u64 v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Find section `name` in a little-endian ELF64: its offset and size; NOBITS gives off == 0. */
static inline int __wasm_bpf_find_section(const unsigned char *elf, size_t sz, const char *name,
					  size_t *off, size_t *size)
{
	if (sz < 64 || memcmp(elf, "\177ELF", 4) != 0 || elf[4] != 2 || elf[5] != 1)
		return -EINVAL;
	__u64 shoff = __wasm_bpf_rd(elf + 0x28, 8);
	__u64 shentsize = __wasm_bpf_rd(elf + 0x3a, 2);
	__u64 shnum = __wasm_bpf_rd(elf + 0x3c, 2);
	__u64 shstrndx = __wasm_bpf_rd(elf + 0x3e, 2);
	if (shentsize < 64 || shstrndx >= shnum || shoff > sz || shnum * shentsize > sz - shoff)
		return -EINVAL;
	const unsigned char *strsh = elf + shoff + shstrndx * shentsize;
	__u64 stroff = __wasm_bpf_rd(strsh + 0x18, 8), strsz = __wasm_bpf_rd(strsh + 0x20, 8);
	if (stroff > sz || strsz > sz - stroff)
		return -EINVAL;
	for (__u64 i = 0; i < shnum; i++) {
		const unsigned char *sh = elf + shoff + i * shentsize;
		__u64 nm = __wasm_bpf_rd(sh, 4);
		if (nm >= strsz || strncmp((const char *)elf + stroff + nm, name, strsz - nm) != 0)
			continue;
		__u64 type = __wasm_bpf_rd(sh + 4, 4);
		__u64 o = __wasm_bpf_rd(sh + 0x18, 8), s = __wasm_bpf_rd(sh + 0x20, 8);
		if (type == 8 /* SHT_NOBITS */) {
			*off = 0;
			*size = s;
			return 0;
		}
		if (o > sz || s > sz - o)
			return -EINVAL;
		*off = o;
		*size = s;
		return 0;
	}
	return -ENOENT;
}

LIBBPF_API void bpf_object__destroy_skeleton(struct bpf_object_skeleton *s);

LIBBPF_API int bpf_object__open_skeleton(struct bpf_object_skeleton *s,
					 const struct bpf_object_open_opts *opts)
{
	struct bpf_object *obj;
	(void)opts;
	obj = (struct bpf_object *)calloc(1, sizeof(*obj));
	if (!obj)
		return -ENOMEM;
	*s->obj = obj;
	obj->name = s->name;
	obj->elf_sz = s->data_sz;
	obj->elf = (unsigned char *)malloc(s->data_sz);
	obj->maps = (struct bpf_map *)calloc(s->map_cnt ? s->map_cnt : 1, sizeof(struct bpf_map));
	obj->progs = (struct bpf_program *)calloc(s->prog_cnt ? s->prog_cnt : 1,
						  sizeof(struct bpf_program));
	obj->links = (struct bpf_link *)calloc(s->prog_cnt ? s->prog_cnt : 1,
					       sizeof(struct bpf_link));
	if (!obj->elf || !obj->maps || !obj->progs || !obj->links)
		return -ENOMEM;
	memcpy(obj->elf, s->data, s->data_sz);
	obj->map_cnt = s->map_cnt;
	obj->prog_cnt = s->prog_cnt;
	for (int i = 0; i < s->map_cnt; i++) {
		struct bpf_map_skeleton *ms =
			(struct bpf_map_skeleton *)((char *)s->maps + i * s->map_skel_sz);
		struct bpf_map *m = &obj->maps[i];
		m->obj = obj;
		m->name = ms->name;
		m->fd = -1;
		*ms->map = m;
		if (!ms->mmaped)
			continue;
		const char *sec = strchr(ms->name, '.');
		size_t off = 0, size = 0;
		if (!sec || __wasm_bpf_find_section(obj->elf, obj->elf_sz, sec, &off, &size) < 0) {
			*ms->mmaped = NULL;
			continue;
		}
		if (off == 0) { /* .bss: zeroed, not part of the object's bytes */
			m->bss = calloc(1, size ? size : 1);
			*ms->mmaped = m->bss;
		} else {
			*ms->mmaped = obj->elf + off;
		}
	}
	for (int i = 0; i < s->prog_cnt; i++) {
		struct bpf_prog_skeleton *ps =
			(struct bpf_prog_skeleton *)((char *)s->progs + i * s->prog_skel_sz);
		obj->progs[i].obj = obj;
		obj->progs[i].name = ps->name;
		obj->links[i].prog = &obj->progs[i];
		*ps->prog = &obj->progs[i];
	}
	obj->next = __wasm_bpf_objects;
	__wasm_bpf_objects = obj;
	return 0;
}

LIBBPF_API int bpf_object__load_skeleton(struct bpf_object_skeleton *s)
{
	struct bpf_object *obj = *s->obj;
	if (!obj)
		return -EINVAL;
	obj->handle = wasm_load_bpf_object(obj->elf, (int)obj->elf_sz);
	if (!obj->handle) {
		errno = EINVAL;
		return -EINVAL;
	}
	for (int i = 0; i < obj->map_cnt; i++) {
		int fd = wasm_bpf_map_fd_by_name(obj->handle, obj->maps[i].name);
		obj->maps[i].fd = fd < 0 ? __wasm_bpf_ret(fd) : fd;
	}
	return 0;
}

LIBBPF_API int bpf_object__attach_skeleton(struct bpf_object_skeleton *s)
{
	struct bpf_object *obj = *s->obj;
	if (!obj || !obj->handle)
		return -EINVAL;
	for (int i = 0; i < s->prog_cnt; i++) {
		struct bpf_prog_skeleton *ps =
			(struct bpf_prog_skeleton *)((char *)s->progs + i * s->prog_skel_sz);
		int err = __wasm_bpf_ret(wasm_attach_bpf_program(obj->handle, ps->name, ""));
		if (err == -EOPNOTSUPP) /* no auto-attach for this section: attach it yourself */
			continue;
		if (err < 0)
			return err;
		if (ps->link)
			*ps->link = &obj->links[i];
	}
	return 0;
}

/* Links are destroyed with the object: detaching only forgets them. */
LIBBPF_API void bpf_object__detach_skeleton(struct bpf_object_skeleton *s)
{
	for (int i = 0; i < s->prog_cnt; i++) {
		struct bpf_prog_skeleton *ps =
			(struct bpf_prog_skeleton *)((char *)s->progs + i * s->prog_skel_sz);
		if (ps->link)
			*ps->link = NULL;
	}
}

LIBBPF_API void bpf_object__close(struct bpf_object *obj)
{
	if (!obj)
		return;
	if (obj->handle)
		wasm_close_bpf_object(obj->handle);
	for (struct bpf_object **p = &__wasm_bpf_objects; *p; p = &(*p)->next) {
		if (*p == obj) {
			*p = obj->next;
			break;
		}
	}
	for (int i = 0; i < obj->map_cnt; i++)
		free(obj->maps[i].bss);
	free(obj->elf);
	free(obj->maps);
	free(obj->progs);
	free(obj->links);
	free(obj);
}

LIBBPF_API void bpf_object__destroy_skeleton(struct bpf_object_skeleton *s)
{
	if (!s)
		return;
	if (s->obj)
		bpf_object__close(*s->obj);
	free(s->maps);
	free(s->progs);
	free(s);
}

LIBBPF_API const char *bpf_object__name(const struct bpf_object *obj) { return obj->name; }
LIBBPF_API const char *bpf_map__name(const struct bpf_map *map) { return map->name; }
LIBBPF_API int bpf_map__fd(const struct bpf_map *map) { return map ? map->fd : -EINVAL; }
LIBBPF_API const char *bpf_program__name(const struct bpf_program *prog) { return prog->name; }

LIBBPF_API struct bpf_map *bpf_object__find_map_by_name(const struct bpf_object *obj,
							const char *name)
{
	for (int i = 0; i < obj->map_cnt; i++)
		if (strcmp(obj->maps[i].name, name) == 0)
			return &obj->maps[i];
	return NULL;
}

LIBBPF_API int bpf_object__find_map_fd_by_name(const struct bpf_object *obj, const char *name)
{
	return __wasm_bpf_ret(wasm_bpf_map_fd_by_name(obj->handle, name));
}

/* Attach one program to a target: an interface name for xdp, a cgroup path for cgroup types. */
LIBBPF_API int bpf_program__attach_target(struct bpf_program *prog, const char *target)
{
	return __wasm_bpf_ret(wasm_attach_bpf_program(prog->obj->handle, prog->name, target));
}

LIBBPF_API int bpf_map__lookup_elem(const struct bpf_map *map, const void *key, size_t key_sz,
				    void *value, size_t value_sz, __u64 flags)
{
	(void)key_sz;
	(void)value_sz;
	return bpf_map_lookup_elem_flags(map->fd, key, value, flags);
}

LIBBPF_API int bpf_map__update_elem(const struct bpf_map *map, const void *key, size_t key_sz,
				    const void *value, size_t value_sz, __u64 flags)
{
	(void)key_sz;
	(void)value_sz;
	return bpf_map_update_elem(map->fd, key, value, flags);
}

LIBBPF_API int bpf_map__delete_elem(const struct bpf_map *map, const void *key, size_t key_sz,
				    __u64 flags)
{
	(void)key_sz;
	(void)flags;
	return bpf_map_delete_elem(map->fd, key);
}

LIBBPF_API int bpf_map__get_next_key(const struct bpf_map *map, const void *cur_key,
				     void *next_key, size_t key_sz)
{
	(void)key_sz;
	return bpf_map_get_next_key(map->fd, cur_key, next_key);
}

/* Per-CPU map values are roundup(value_size, 8) * libbpf_num_possible_cpus() bytes. */
LIBBPF_API int libbpf_num_possible_cpus(void) { return ebpm_num_possible_cpus(); }

/* ---- the ring and perf buffers, through wasm_bpf_buffer_poll ---- */

#ifndef WASM_BPF_BUFFER_SIZE
#define WASM_BPF_BUFFER_SIZE (64 * 1024) /* the largest event a guest receives whole */
#endif

static inline uint64_t __wasm_bpf_obj_of_fd(int fd)
{
	for (struct bpf_object *o = __wasm_bpf_objects; o; o = o->next)
		for (int i = 0; i < o->map_cnt; i++)
			if (o->maps[i].fd == fd)
				return o->handle;
	return __wasm_bpf_objects ? __wasm_bpf_objects->handle : 0;
}

typedef int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size);

struct ring_buffer_opts {
	size_t sz;
};

struct ring_buffer {
	uint64_t obj;
	int fd;
	ring_buffer_sample_fn sample_cb;
	void *ctx;
	void *buf;
};

LIBBPF_API struct ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn sample_cb,
						void *ctx, const struct ring_buffer_opts *opts)
{
	struct ring_buffer *rb = (struct ring_buffer *)calloc(1, sizeof(*rb));
	(void)opts;
	if (!rb || !(rb->buf = malloc(WASM_BPF_BUFFER_SIZE))) {
		free(rb);
		errno = ENOMEM;
		return NULL;
	}
	rb->obj = __wasm_bpf_obj_of_fd(map_fd);
	rb->fd = map_fd;
	rb->sample_cb = sample_cb;
	rb->ctx = ctx;
	return rb;
}

/* The number of events handled, or a negative errno (-EINTR when the host asks us to stop). */
LIBBPF_API int ring_buffer__poll(struct ring_buffer *rb, int timeout_ms)
{
	return __wasm_bpf_ret(wasm_bpf_buffer_poll(rb->obj, rb->fd, (int32_t)rb->sample_cb,
						   (uint32_t)(uintptr_t)rb->ctx, rb->buf,
						   WASM_BPF_BUFFER_SIZE, timeout_ms));
}

LIBBPF_API int ring_buffer__consume(struct ring_buffer *rb) { return ring_buffer__poll(rb, 0); }

LIBBPF_API void ring_buffer__free(struct ring_buffer *rb)
{
	if (!rb)
		return;
	free(rb->buf);
	free(rb);
}

typedef void (*perf_buffer_sample_fn)(void *ctx, int cpu, void *data, __u32 size);
typedef void (*perf_buffer_lost_fn)(void *ctx, int cpu, __u64 cnt);

struct perf_buffer_opts {
	size_t sz;
};

struct perf_buffer {
	struct ring_buffer rb;
	perf_buffer_sample_fn sample_cb;
	void *ctx;
};

static int __wasm_bpf_perf_sample(void *ctx, void *data, size_t size)
{
	struct perf_buffer *pb = (struct perf_buffer *)ctx;
	pb->sample_cb(pb->ctx, 0, data, (__u32)size);
	return 0;
}

LIBBPF_API struct perf_buffer *perf_buffer__new(int map_fd, size_t page_cnt,
						perf_buffer_sample_fn sample_cb,
						perf_buffer_lost_fn lost_cb, void *ctx,
						const struct perf_buffer_opts *opts)
{
	struct perf_buffer *pb = (struct perf_buffer *)calloc(1, sizeof(*pb));
	(void)page_cnt;
	(void)lost_cb;
	(void)opts;
	if (!pb || !(pb->rb.buf = malloc(WASM_BPF_BUFFER_SIZE))) {
		free(pb);
		errno = ENOMEM;
		return NULL;
	}
	pb->rb.obj = __wasm_bpf_obj_of_fd(map_fd);
	pb->rb.fd = map_fd;
	pb->rb.sample_cb = __wasm_bpf_perf_sample;
	pb->rb.ctx = pb;
	pb->sample_cb = sample_cb;
	pb->ctx = ctx;
	return pb;
}

LIBBPF_API int perf_buffer__poll(struct perf_buffer *pb, int timeout_ms)
{
	return ring_buffer__poll(&pb->rb, timeout_ms);
}

LIBBPF_API void perf_buffer__free(struct perf_buffer *pb)
{
	if (!pb)
		return;
	free(pb->rb.buf);
	free(pb);
}

/* The upstream wasm-bpf guest API (bpf_buffer), for source compatibility. */
typedef int (*bpf_buffer_sample_fn)(void *ctx, void *data, size_t size);

struct bpf_buffer {
	struct bpf_map *events;
	struct ring_buffer *rb;
};

LIBBPF_API struct bpf_buffer *bpf_buffer__new(struct bpf_map *events, struct bpf_map *heap)
{
	struct bpf_buffer *b = (struct bpf_buffer *)calloc(1, sizeof(*b));
	(void)heap;
	if (b)
		b->events = events;
	return b;
}

LIBBPF_API int bpf_buffer__open(struct bpf_buffer *b, bpf_buffer_sample_fn sample_cb, void *ctx)
{
	b->rb = ring_buffer__new(bpf_map__fd(b->events), sample_cb, ctx, NULL);
	return b->rb ? 0 : -errno;
}

LIBBPF_API int bpf_buffer__poll(struct bpf_buffer *b, int timeout_ms)
{
	return ring_buffer__poll(b->rb, timeout_ms);
}

LIBBPF_API void bpf_buffer__free(struct bpf_buffer *b)
{
	if (!b)
		return;
	ring_buffer__free(b->rb);
	free(b);
}

/* ---- odds and ends that libbpf apps call ---- */

enum libbpf_print_level { LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG };
typedef int (*libbpf_print_fn_t)(enum libbpf_print_level level, const char *, va_list ap);

/* The host routes libbpf's log to its own logging: a guest print hook is never called. */
LIBBPF_API libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn)
{
	(void)fn;
	return NULL;
}

LIBBPF_API int libbpf_strerror(int err, char *buf, size_t size)
{
	snprintf(buf, size, "%s", strerror(err < 0 ? -err : err));
	return 0;
}

LIBBPF_API long libbpf_get_error(const void *ptr) { return ptr ? 0 : -errno; }

#endif /* EBPM_WASM_BPF_LIBBPF_H */
