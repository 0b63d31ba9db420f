/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __TWOSTREAMS_H
#define __TWOSTREAMS_H

struct event {
	__u32 pid;
	__u32 source; /* 1: ring buffer */
};

struct other {
	__u64 source; /* 2: perf buffer */
	__u32 pid;
};

#endif /* __TWOSTREAMS_H */
