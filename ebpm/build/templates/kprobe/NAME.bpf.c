// SPDX-License-Identifier: (GPL-2.0 OR BSD-3-Clause)
/* {{name}}: print the files processes delete, from a kprobe on do_unlinkat().
 *
 * kprobes need a kernel built with CONFIG_KPROBES. handle_unlink_tp reaches the same event
 * through the syscalls:sys_enter_unlinkat tracepoint; ebpm puts both programs in one group
 * (the `_tp` suffix) and `ebpm run` keeps the first that attaches.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Trace only this process id (0: every process). */
const volatile pid_t targ_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline struct event *new_event(void)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *e;

	if (targ_pid && pid != targ_pid)
		return NULL;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return NULL;
	e->pid = pid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return e;
}

SEC("kprobe/do_unlinkat")
int BPF_KPROBE(handle_unlink, int dfd, struct filename *name)
{
	struct event *e = new_event();

	if (!e)
		return 0;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(name, name));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* The fallback for kernels without kprobes. */
SEC("tracepoint/syscalls/sys_enter_unlinkat")
int handle_unlink_tp(struct trace_event_raw_sys_enter *ctx)
{
	struct event *e = new_event();

	if (!e)
		return 0;
	bpf_probe_read_user_str(e->filename, sizeof(e->filename), (const char *)ctx->args[1]);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
