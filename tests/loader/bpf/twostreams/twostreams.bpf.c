// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program: one event into a ring buffer and one into a perf buffer per getppid().
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "twostreams.h"

const volatile __u32 targ_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} more SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int both(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct other o = {};
	struct event *e;

	if (pid != targ_pid)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->pid = pid;
		e->source = 1;
		bpf_ringbuf_submit(e, 0);
	}
	o.source = 2;
	o.pid = pid;
	bpf_perf_event_output(ctx, &more, BPF_F_CURRENT_CPU, &o, sizeof(o));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
