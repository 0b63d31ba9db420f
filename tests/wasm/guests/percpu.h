/* SPDX-License-Identifier: GPL-2.0 */
/* percpu: a per-CPU array whose values userspace reads (one per possible CPU, 8-byte aligned). */
#ifndef PERCPU_H
#define PERCPU_H
struct pcpu_value {
	__u32 a;
	__u32 b;
	__u32 c; /* 12 bytes: padded to 16 per CPU in a lookup */
};
#endif
