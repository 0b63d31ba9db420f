/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __HOOKS_H
#define __HOOKS_H

enum hook { RAW_TP = 1, TP_BTF = 2, UPROBE = 3, URETPROBE = 4 };

struct event {
	enum hook hook;
	__u32 pid;
	__s64 a;
	__s64 b;
};

#endif /* __HOOKS_H */
