/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __SVCPROBE_H
#define __SVCPROBE_H

#define TASK_COMM_LEN 16
#define MAX_SLOTS 24

struct event {
	__u32 pid;
	__u32 tag;
	__u64 arg;
	char comm[TASK_COMM_LEN];
};

struct call_key {
	__u32 pid;
	char comm[TASK_COMM_LEN];
};

struct hist {
	__u32 slots[MAX_SLOTS];
};

#endif /* __SVCPROBE_H */
