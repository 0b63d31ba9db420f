// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program for the agent: a log2 histogram of the ARG of every getpgid(ARG) of one
// process, and no event stream (a package with result maps only, as runqlat).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "histprobe.h"

const volatile __u32 targ_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

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
	struct hist *h;

	if (targ_pid && pid != targ_pid)
		return 0;
	h = bpf_map_lookup_elem(&hists, &zero);
	if (h) {
		slot = log2l(ctx->args[0]);
		if (slot < MAX_SLOTS)
			__sync_fetch_and_add(&h->slots[slot], 1);
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
