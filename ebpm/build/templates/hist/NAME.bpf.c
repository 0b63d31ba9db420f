// SPDX-License-Identifier: (GPL-2.0 OR BSD-3-Clause)
/* {{name}}: a log2 histogram of each process's read() sizes, printed when the process exits.
 *
 * The histograms live in a hash map keyed by process id (syscalls:sys_exit_read); at
 * sched:sched_process_exit the process's histogram goes to user space as one event.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Histogram only this process id (0: every process). */
const volatile pid_t targ_pid = 0;
/* Report only processes that read at least this many bytes. */
const volatile unsigned long long min_bytes = 1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline __u32 log2_u32(__u32 v)
{
	__u32 shift, r;

	r = (v > 0xFFFF) << 4; v >>= r;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? log2_u32(hi) + 32 : log2_u32(v);
}

SEC("tracepoint/syscalls/sys_exit_read")
int handle_read(struct trace_event_raw_sys_exit *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	static const struct hist zero;
	struct hist *h;
	__u32 slot;

	if (ctx->ret <= 0 || (targ_pid && pid != targ_pid))
		return 0;
	h = bpf_map_lookup_elem(&hists, &pid);
	if (!h) {
		bpf_map_update_elem(&hists, &pid, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &pid);
		if (!h)
			return 0;
	}
	slot = log2_u64(ctx->ret);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	__sync_fetch_and_add(&h->slots[slot], 1);
	__sync_fetch_and_add(&h->total_bytes, ctx->ret);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int handle_exit(struct trace_event_raw_sched_process_template *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32;
	struct hist *h;
	struct event *e;

	if (pid != (__u32)id) /* a thread, not the whole process */
		return 0;
	h = bpf_map_lookup_elem(&hists, &pid);
	if (!h)
		return 0;
	if (h->total_bytes >= min_bytes) {
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (e) {
			e->pid = pid;
			bpf_get_current_comm(e->comm, sizeof(e->comm));
			e->total_bytes = h->total_bytes;
			__builtin_memcpy(e->slots, h->slots, sizeof(e->slots));
			bpf_ringbuf_submit(e, 0);
		}
	}
	bpf_map_delete_elem(&hists, &pid);
	return 0;
}
