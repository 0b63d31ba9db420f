// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program: count the packets an interface receives, at XDP and at tc ingress.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "netcount.h"

#define TC_ACT_OK 0

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline void count(__u32 hook)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &hook);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("xdp")
int count_xdp(struct xdp_md *ctx)
{
	count(HOOK_XDP);
	return XDP_PASS;
}

SEC("tc")
int count_tc(struct __sk_buff *skb)
{
	count(HOOK_TC);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
