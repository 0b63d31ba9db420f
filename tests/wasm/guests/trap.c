// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A guest that loads and attaches execsnoop, then traps inside its first event callback. */
#include <stdio.h>
#include <bpf/libbpf.h>
#include "execsnoop.h"
#include "execsnoop.skel.h"

static int on_event(void *ctx, void *data, size_t size)
{
	(void)ctx; (void)data; (void)size;
	__builtin_trap();
}

int main(void)
{
	struct execsnoop_bpf *skel = execsnoop_bpf__open_and_load();
	if (!skel || execsnoop_bpf__attach(skel))
		return 1;
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, NULL, NULL);
	printf("READY\n");
	fflush(stdout);
	while (ring_buffer__poll(rb, 100) >= 0)
		;
	return 0; /* not reached: the callback traps, and the host closes what we leave open */
}
