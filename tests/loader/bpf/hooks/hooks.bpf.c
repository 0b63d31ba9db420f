// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program: raw_tp, tp_btf, uprobe and uretprobe, each reporting what it saw.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "hooks.h"

/* process whose syscalls to report */
const volatile __u32 targ_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

static __always_inline int emit(enum hook hook, __s64 a, __s64 b)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return 0;
	e->hook = hook;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->a = a;
	e->b = b;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

static __always_inline bool mine(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == targ_pid;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(on_sys_enter, struct pt_regs *regs, long id)
{
	if (!mine() || id != 110 /* __NR_getppid on x86_64 */)
		return 0;
	return emit(RAW_TP, id, 0);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	if (!mine() || BPF_CORE_READ(regs, orig_ax) != 110)
		return 0;
	return emit(TP_BTF, BPF_CORE_READ(regs, orig_ax), ret);
}

SEC("uprobe")
int BPF_KPROBE(on_add, int a, int b)
{
	return emit(UPROBE, a, b);
}

SEC("uretprobe")
int BPF_KRETPROBE(on_add_ret, int ret)
{
	return emit(URETPROBE, ret, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
