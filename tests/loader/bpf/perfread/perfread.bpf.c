// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program for reading a perf event array from its memory: per getppid() of targ_pid one
// sample on the CPU it runs on; every 10th is longer than struct event.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "perfread.h"

const volatile __u32 targ_pid = 0;
__u64 seq = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int perfread(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct big b = {};
	__u64 n;

	if (pid != targ_pid)
		return 0;
	n = __sync_fetch_and_add(&seq, 1);
	b.e.seq = n;
	b.e.pid = pid;
	b.e.neg = -(__s32)n;
	bpf_get_current_comm(b.e.comm, sizeof(b.e.comm));
	b.extra = n;
	if (n % 10 == 9)
		bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &b, sizeof(b));
	else
		bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &b.e, sizeof(b.e));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
