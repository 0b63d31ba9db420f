// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Copyright (c) 2021 Hengqi Chen
// Adapted from bcc's libbpf-tools/sigsnoop.bpf.c for ebpm: the signal_generate tracepoint
// (every signal the kernel generates), with a ring buffer.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "sigsnoop.h"

/* Trace signals sent by this process id only, 0 for all */
const volatile pid_t filtered_pid = 0;
/* Trace this signal number only, 0 for all */
const volatile int target_signal = 0;
/* Show only signals that failed to be delivered */
const volatile bool failed_only = false;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("tracepoint/signal/signal_generate")
int sig_trace(struct trace_event_raw_signal_generate *ctx)
{
	struct event *event;
	pid_t tpid = ctx->pid;
	int ret = ctx->errno;
	int sig = ctx->sig;
	__u64 pid_tgid;
	__u32 pid;

	if (failed_only && ret == 0)
		return 0;

	if (target_signal && sig != target_signal)
		return 0;

	pid_tgid = bpf_get_current_pid_tgid();
	pid = pid_tgid >> 32;
	if (filtered_pid && pid != filtered_pid)
		return 0;

	event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event)
		return 0;
	event->pid = pid;
	event->tpid = tpid;
	event->sig = sig;
	event->ret = ret;
	bpf_get_current_comm(event->comm, sizeof(event->comm));
	bpf_ringbuf_submit(event, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
