// SPDX-License-Identifier: GPL-2.0
/* A per-CPU array and a hash map for the wasm host's map tests; a tracepoint keeps it tracing. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "percpu.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct pcpu_value);
} pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jumps SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int wasm_test_pcpu(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
