// SPDX-License-Identifier: GPL-2.0
/* A perf buffer consumer: prints each record until it has N of them (argv[2]); with argv[3],
 * it waits that many ms between READY and its first poll. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "perfbuf.h"
#include "perfbuf.skel.h"

static int got;

static void on_record(void *ctx, int cpu, void *data, __u32 size)
{
	const struct perf_record *r = data;
	(void)ctx; (void)cpu;
	if (size >= sizeof(*r))
		printf("PERF pid=%u seq=%u\n", r->pid, r->seq);
	got++;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	struct perfbuf_bpf *skel = perfbuf_bpf__open();
	if (!skel)
		return 1;
	skel->rodata->targ_pid = (__u32)atol(argv[1]);
	int want = atoi(argv[2]);
	int delay_ms = argc > 3 ? atoi(argv[3]) : 0;
	if (perfbuf_bpf__load(skel) || perfbuf_bpf__attach(skel))
		return 1;
	struct perf_buffer *pb = perf_buffer__new(bpf_map__fd(skel->maps.records), 8, on_record,
						  NULL, NULL, NULL);
	printf("READY\n");
	fflush(stdout);
	if (delay_ms)
		usleep((useconds_t)delay_ms * 1000);
	while (got < want && perf_buffer__poll(pb, 100) >= 0)
		;
	printf("DONE %d\n", got);
	perf_buffer__free(pb);
	perfbuf_bpf__destroy(skel);
	return 0;
}
