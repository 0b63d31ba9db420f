/* SPDX-License-Identifier: (GPL-2.0 OR BSD-3-Clause) */
/* {{name}}: the records {{name}}.bpf.c sends through the ring buffer. */
#ifndef __{{IDENT}}_H
#define __{{IDENT}}_H

#define TASK_COMM_LEN 16
#define FILENAME_LEN 127

struct event {
	__u32 pid;
	__u32 ppid;
	__u32 exit_code;
	__u64 duration_ns;
	char comm[TASK_COMM_LEN];
	char filename[FILENAME_LEN];
	bool exit_event;
};

#endif /* __{{IDENT}}_H */
