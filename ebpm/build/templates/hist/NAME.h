/* SPDX-License-Identifier: (GPL-2.0 OR BSD-3-Clause) */
/* {{name}}: the records {{name}}.bpf.c sends through the ring buffer. */
#ifndef __{{IDENT}}_H
#define __{{IDENT}}_H

#define TASK_COMM_LEN 16
#define MAX_SLOTS 24

/* A log2 histogram: slots[i] counts reads of 2^i to 2^(i+1)-1 bytes. */
struct hist {
	__u64 total_bytes;
	__u32 slots[MAX_SLOTS];
};

/* Sent when a process exits: the histogram of its read() sizes. */
struct event {
	__u32 pid;
	char comm[TASK_COMM_LEN];
	__u64 total_bytes;
	__u32 slots[MAX_SLOTS];
};

#endif /* __{{IDENT}}_H */
