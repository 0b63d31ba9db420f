// SPDX-License-Identifier: (GPL-2.0 OR BSD-3-Clause)
/* {{name}}: print host name lookups and their latency, from uprobes on libc's getaddrinfo().
 *
 * Try it with `getent ahosts localhost`. libbpf finds libc.so.6 in the standard library paths;
 * write a full path in the section (uprobe//lib/x86_64-linux-gnu/libc.so.6:getaddrinfo) to
 * probe another copy.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Trace only this process id (0: every process). */
const volatile pid_t targ_pid = 0;

struct start {
	__u64 ts;
	const char *host;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct start);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("uprobe/libc.so.6:getaddrinfo")
int BPF_KPROBE(handle_getaddrinfo, const char *node)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct start s = {};

	if (targ_pid && (id >> 32) != targ_pid)
		return 0;
	s.ts = bpf_ktime_get_ns();
	s.host = node;
	bpf_map_update_elem(&starts, &tid, &s, BPF_ANY);
	return 0;
}

SEC("uretprobe/libc.so.6:getaddrinfo")
int BPF_KRETPROBE(handle_getaddrinfo_ret, int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct start *s;
	struct event *e;

	s = bpf_map_lookup_elem(&starts, &tid);
	if (!s)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->pid = id >> 32;
		e->ret = ret;
		e->latency_ns = bpf_ktime_get_ns() - s->ts;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		bpf_probe_read_user_str(e->host, sizeof(e->host), s->host);
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&starts, &tid);
	return 0;
}
