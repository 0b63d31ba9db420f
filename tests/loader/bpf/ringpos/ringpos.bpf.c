// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program watching a ring buffer's consumer position from the kernel's side: per getppid()
// of targ_pid it reads the position the consumer last published and counts the times it was
// lower than one read before (a torn write by the consumer), then sends one record.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "ringpos.h"

const volatile __u32 targ_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");  /* [0]: highest position seen, [1]: times it went back, [2]: records */

SEC("tracepoint/syscalls/sys_enter_getppid")
int ringpos(void *ctx)
{
	__u32 zero = 0, one = 1, two = 2;
	__u64 *high, *back, *made, cons;
	struct event *e;

	if ((__u32)(bpf_get_current_pid_tgid() >> 32) != targ_pid)
		return 0;
	high = bpf_map_lookup_elem(&stats, &zero);
	back = bpf_map_lookup_elem(&stats, &one);
	made = bpf_map_lookup_elem(&stats, &two);
	if (!high || !back || !made)
		return 0;
	cons = bpf_ringbuf_query(&events, BPF_RB_CONS_POS);
	if (cons < *high)
		*back += 1;
	else
		*high = cons;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->seq = (*made)++;
	e->cons = cons;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
