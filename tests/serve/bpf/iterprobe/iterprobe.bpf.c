// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program for the agent: an iterator (iter/task) and nothing else. It prints a line
// "pid PID" for every process, or with --lines N, N lines "pid PID line I" (a big output), or
// with --binary 8 raw bytes: the pid (u32) and ff fe 00 '\n' (not UTF-8).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

const volatile __u32 lines = 0;
const volatile bool binary = false;

SEC("iter/task")
int iterprobe_pids(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	__u32 i;

	if (!task || task->pid != task->tgid)
		return 0;
	if (binary) {
		__u8 rec[8] = {0, 0, 0, 0, 0xff, 0xfe, 0x00, '\n'};

		__builtin_memcpy(rec, &task->tgid, 4);
		bpf_seq_write(seq, rec, sizeof(rec));
		return 0;
	}
	if (!lines) {
		BPF_SEQ_PRINTF(seq, "pid %d\n", task->tgid);
		return 0;
	}
	for (i = 0; i < lines && i < 512; i++)
		BPF_SEQ_PRINTF(seq, "pid %d line %u\n", task->tgid, i);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
