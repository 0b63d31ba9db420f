// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program for the agent: every getpgid(ARG) of one process is an event, a count per
// (pid, comm) and a log2 histogram of ARG.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "svcprobe.h"

const volatile __u32 targ_pid = 0;
const volatile __u32 tag = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct call_key);
	__type(value, __u64);
} call_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} hist SEC(".maps");

static __always_inline __u32 log2l(__u64 v)
{
	__u32 r = 0;

	while (v > 1 && r < MAX_SLOTS - 1) {
		v >>= 1;
		r++;
	}
	return r;
}

SEC("tracepoint/syscalls/sys_enter_getpgid")
int handle_getpgid(struct trace_event_raw_sys_enter *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32, zero = 0, slot;
	struct call_key key = {};
	struct event *e;
	struct hist *h;
	__u64 one = 1, *n;

	if (targ_pid && pid != targ_pid)
		return 0;
	key.pid = pid;
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	n = bpf_map_lookup_elem(&call_counts, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&call_counts, &key, &one, BPF_ANY);
	h = bpf_map_lookup_elem(&hist, &zero);
	if (h) {
		slot = log2l(ctx->args[0]);
		if (slot < MAX_SLOTS)
			__sync_fetch_and_add(&h->slots[slot], 1);
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = pid;
	e->tag = tag;
	e->arg = ctx->args[0];
	__builtin_memcpy(e->comm, key.comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
