// SPDX-License-Identifier: GPL-2.0
/* Emits a perf_record per getppid() of targ_pid through a perf event array. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "perfbuf.h"

const volatile __u32 targ_pid = 0;
__u32 seq = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} records SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int wasm_test_perf(void *ctx)
{
	struct perf_record r = {};

	if ((bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return 0;
	r.pid = targ_pid;
	r.seq = seq++;
	bpf_perf_event_output(ctx, &records, BPF_F_CURRENT_CPU, &r, sizeof(r));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
