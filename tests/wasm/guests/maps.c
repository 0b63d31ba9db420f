// SPDX-License-Identifier: GPL-2.0
/* Map operations through the host: per-CPU values, NULL first key, and pointers out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include "percpu.h"
#include "percpu.skel.h"

int main(void)
{
	struct percpu_bpf *skel = percpu_bpf__open_and_load();
	if (!skel)
		return 1;
	int ncpus = libbpf_num_possible_cpus();
	size_t stride = (sizeof(struct pcpu_value) + 7) / 8 * 8;
	unsigned char *values = calloc(ncpus, stride);
	int fd = bpf_map__fd(skel->maps.pcpu);
	__u32 key = 2;
	for (int i = 0; i < ncpus; i++) {
		struct pcpu_value *v = (struct pcpu_value *)(values + i * stride);
		v->a = i; v->b = 1000 + i; v->c = 0xC0FFEE;
	}
	printf("UPDATE %d\n", bpf_map_update_elem(fd, &key, values, BPF_ANY));
	memset(values, 0, ncpus * stride);
	printf("LOOKUP %d\n", bpf_map_lookup_elem(fd, &key, values));
	int good = 1;
	for (int i = 0; i < ncpus; i++) {
		struct pcpu_value *v = (struct pcpu_value *)(values + i * stride);
		good &= v->a == (__u32)i && v->b == 1000u + i && v->c == 0xC0FFEE;
	}
	printf("PERCPU ncpus=%d ok=%d\n", ncpus, good);

	int tfd = bpf_map__fd(skel->maps.table);
	for (__u32 k = 10; k < 13; k++) {
		__u64 v = k * 100;
		bpf_map_update_elem(tfd, &k, &v, BPF_NOEXIST);
	}
	__u32 cur, next, sum = 0, n = 0;
	const void *prev = NULL;
	while (bpf_map_get_next_key(tfd, prev, &next) == 0) {
		sum += next;
		n++;
		cur = next;
		prev = &cur;
	}
	printf("ITER n=%u sum=%u\n", n, sum);

	/* Out of bounds (the top of the 4 GiB space, and across the end): -EFAULT, no crash. */
	__u64 v;
	printf("FAULT key=%d\n", wasm_bpf_map_operate(tfd, 1, (void *)(uintptr_t)0xFFFFFFF0u, &v, NULL, 0));
	printf("FAULT value=%d\n", wasm_bpf_map_operate(tfd, 1, &key, (void *)(uintptr_t)0xFFFFFFFCu, NULL, 0));
	__u32 zero = 0, some_fd = 3; /* an fd of the host, not the guest's to hand to the kernel */
	printf("FDMAP %d\n", wasm_bpf_map_operate(bpf_map__fd(skel->maps.jumps), 2, &zero,
						   &some_fd, NULL, 0));
	printf("BADFD %d\n", wasm_bpf_map_operate(0, 1, &key, &v, NULL, 0));
	printf("BADNAME %d\n", wasm_bpf_map_fd_by_name(1, (const char *)(uintptr_t)0xFFFFFFFFu));
	percpu_bpf__destroy(skel);
	return 0;
}
