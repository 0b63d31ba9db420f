/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __KINDS_H
#define __KINDS_H

enum color { RED = 1, GREEN = 2, BLUE = -7 };

struct inner {
	__u16 a;
	__s8 b;
};

/* One of every kind the decoder handles. */
struct event {
	__u8 u8;
	__s8 s8;
	__u16 u16;
	__s16 s16;
	__u32 u32;
	__s32 s32;
	__u64 u64;
	__s64 s64;
	char comm[16];
	char word[8];
	__u32 arr[3];
	struct inner in;
	struct inner ins[2];
	enum color color;
	unsigned int bf_u:3;
	int bf_s:5;
	unsigned int bf_one:1;
	bool flag;
	union {
		__u32 whole;
		__u16 halves[2];
	};
	__u32 pid;
	unsigned __int128 big;
};

#endif /* __KINDS_H */
