/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __TCPCONNECT_H
#define __TCPCONNECT_H

#define TASK_COMM_LEN 16

struct event {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 af;
	__u32 pid;
	__u32 uid;
	__u16 dport;
	__u16 pad;
	char comm[TASK_COMM_LEN];
};

#endif /* __TCPCONNECT_H */
