// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program the verifier must refuse: a map value used without checking it for NULL.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "badprobe.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} values SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpgid")
int handle_getpgid(void *ctx)
{
	__u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&values, &zero);

	e->value += 1; /* no NULL check: rejected */
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
