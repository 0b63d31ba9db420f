/* SPDX-License-Identifier: (GPL-2.0 OR BSD-3-Clause) */
/* {{name}}: the records {{name}}.bpf.c sends through the ring buffer. */
#ifndef __{{IDENT}}_H
#define __{{IDENT}}_H

#define TASK_COMM_LEN 16
#define HOST_LEN 80

struct event {
	__u32 pid;
	int ret;
	__u64 latency_ns;
	char comm[TASK_COMM_LEN];
	char host[HOST_LEN];
};

#endif /* __{{IDENT}}_H */
