/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __PERFREAD_H
#define __PERFREAD_H

struct event {
	__u64 seq;
	__u32 pid;
	__s32 neg;
	char comm[16];
};

struct big {  /* every 10th record: longer than an event, the event's fields first */
	struct event e;
	__u64 extra;
};

#endif /* __PERFREAD_H */
