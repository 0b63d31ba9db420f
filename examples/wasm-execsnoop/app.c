// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* execsnoop's userspace, a WebAssembly guest: prints one line per exec, then counts per command.
 *
 * Usage: execsnoop [--ppid PID] [--max-events N]
 * Runs until the host stops it (Ctrl-C, --duration) or N events were printed; then prints the
 * per-command counts it reads by iterating the `counts` hash map.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include "execsnoop.h"
#include "execsnoop.skel.h"

static long max_events = -1;
static long seen;

static int handle_event(void *ctx, void *data, size_t size)
{
	const struct event *e = data;
	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	printf("EXEC pid=%u ppid=%u uid=%u comm=%.16s filename=%.128s\n", e->pid, e->ppid, e->uid,
	       e->comm, e->filename);
	seen++;
	return 0;
}

static int print_counts(int fd)
{
	char key[TASK_COMM_LEN], next[TASK_COMM_LEN];
	__u64 value;
	const void *prev = NULL; /* NULL: start from the first key */
	int n = 0;

	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		if (bpf_map_lookup_elem(fd, next, &value) == 0) {
			printf("COUNT comm=%.16s execs=%llu\n", next, (unsigned long long)value);
			n++;
		}
		memcpy(key, next, sizeof(key));
		prev = key;
	}
	return n;
}

int main(int argc, char **argv)
{
	struct execsnoop_bpf *skel;
	struct ring_buffer *rb;
	unsigned long ppid = 0;
	int err;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ppid") == 0 && i + 1 < argc)
			ppid = strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--max-events") == 0 && i + 1 < argc)
			max_events = strtol(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: %s [--ppid PID] [--max-events N]\n", argv[0]);
			return 2;
		}
	}

	skel = execsnoop_bpf__open();
	if (!skel) {
		fprintf(stderr, "failed to open the BPF skeleton\n");
		return 1;
	}
	skel->rodata->targ_ppid = (__u32)ppid;
	err = execsnoop_bpf__load(skel);
	if (err) {
		fprintf(stderr, "failed to load the BPF object: %d\n", err);
		goto out;
	}
	err = execsnoop_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "failed to attach: %d\n", err);
		goto out;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), handle_event, NULL, NULL);
	if (!rb) {
		err = -errno;
		goto out;
	}
	printf("READY\n");
	fflush(stdout);
	while (max_events < 0 || seen < max_events) {
		err = ring_buffer__poll(rb, 100);
		if (err == -EINTR) { /* the host asks us to stop */
			err = 0;
			break;
		}
		if (err < 0) {
			fprintf(stderr, "polling the ring buffer: %d\n", err);
			break;
		}
		err = 0;
	}
	print_counts(bpf_map__fd(skel->maps.counts));
	ring_buffer__free(rb);
out:
	execsnoop_bpf__destroy(skel);
	return err < 0 ? 1 : 0;
}
