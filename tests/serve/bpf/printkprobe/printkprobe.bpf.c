// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program for the agent: every getpgid(ARG) of one process prints one bpf_printk line.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 targ_pid = 0;

SEC("tracepoint/syscalls/sys_enter_getpgid")
int handle_getpgid(struct trace_event_raw_sys_enter *ctx)
{
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return 0;
	bpf_printk("getpgid %ld", ctx->args[0]);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
