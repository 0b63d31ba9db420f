// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program for reading a ring buffer from its memory: per getppid() of targ_pid one record;
// every 7th is discarded, every 10th is longer than struct event.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "ringread.h"

const volatile __u32 targ_pid = 0;
__u64 seq = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int ringread(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 n;
	struct event *e;
	struct big *b;

	if (pid != targ_pid)
		return 0;
	n = seq++;
	if (n % 10 == 9) {
		b = bpf_ringbuf_reserve(&events, sizeof(*b), 0);
		if (!b)
			return 0;
		e = &b->e;
		b->extra = n;
	} else {
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e)
			return 0;
	}
	e->seq = n;
	e->pid = pid;
	e->neg = -(__s32)n;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (n % 7 == 6)
		bpf_ringbuf_discard(e, 0);
	else
		bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
