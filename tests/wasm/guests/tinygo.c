// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The TinyGo ABI from C: poll through "callback-wrapper", events arrive at export "go-callback". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <bpf/libbpf.h>
#include "execsnoop.h"
#include "execsnoop.skel.h"

__attribute__((import_module("callback-wrapper"), import_name("wasm_bpf_buffer_poll")))
int go_buffer_poll(uint64_t obj, int fd, uint32_t ctx, void *data, int max_size, int timeout_ms);

static int events;

__attribute__((export_name("go-callback")))
int go_callback(uint32_t ctx, void *data, uint32_t size)
{
	const struct event *e = data;
	if (ctx == 42 && size >= sizeof(*e))
		printf("GO comm=%.16s\n", e->comm);
	events++;
	return 0;
}

int main(int argc, char **argv)
{
	struct execsnoop_bpf *skel = execsnoop_bpf__open();
	if (!skel)
		return 1;
	skel->rodata->targ_ppid = argc > 1 ? (__u32)strtoul(argv[1], NULL, 10) : 0;
	if (execsnoop_bpf__load(skel) || execsnoop_bpf__attach(skel))
		return 1;
	static char buf[4096];
	printf("READY\n");
	fflush(stdout);
	int err;
	while ((err = go_buffer_poll(skel->obj->handle, bpf_map__fd(skel->maps.events), 42, buf,
				     sizeof(buf), 100)) >= 0)
		;
	printf("END err=%d events=%d\n", err, events);
	execsnoop_bpf__destroy(skel);
	return 0;
}
