// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program: three ways to see getppid(), in order of preference: fentry (refused by some
// kernels at load), kprobe (fails to attach without CONFIG_KPROBES), tracepoint.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "fallback.h"

const volatile __u32 targ_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

static __always_inline int emit(enum via via)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *e;

	if (pid != targ_pid)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->via = via;
	e->pid = pid;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fentry/__do_sys_getppid")
int BPF_PROG(via_fentry)
{
	return emit(VIA_FENTRY);
}

SEC("kprobe/__do_sys_getppid")
int BPF_KPROBE(via_kprobe)
{
	return emit(VIA_KPROBE);
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int via_tp(void *ctx)
{
	return emit(VIA_TP);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
