// SPDX-License-Identifier: (GPL-2.0 OR BSD-3-Clause)
/* {{name}}: print the files processes open, from the syscalls:sys_enter_openat tracepoint. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Trace only this process id (0: every process). */
const volatile pid_t targ_pid = 0;
/* Trace only this user id (-1: every user). */
const volatile int targ_uid = -1;
/* Trace only commands of this name (empty: every command). */
const volatile char targ_comm[TASK_COMM_LEN] = "";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline bool comm_allowed(const char *comm)
{
	int i;

	if (!targ_comm[0])
		return true;
	for (i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] != targ_comm[i])
			return false;
		if (!comm[i])
			break;
	}
	return true;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int handle_openat(struct trace_event_raw_sys_enter *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	char comm[TASK_COMM_LEN];
	struct event *e;

	if (targ_pid && pid != targ_pid)
		return 0;
	if (targ_uid != -1 && uid != (__u32)targ_uid)
		return 0;
	bpf_get_current_comm(comm, sizeof(comm));
	if (!comm_allowed(comm))
		return 0;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = pid;
	e->uid = uid;
	e->flags = (int)ctx->args[2];
	__builtin_memcpy(e->comm, comm, sizeof(e->comm));
	bpf_probe_read_user_str(e->filename, sizeof(e->filename), (const char *)ctx->args[1]);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
