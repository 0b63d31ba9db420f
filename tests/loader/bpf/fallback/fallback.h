/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __FALLBACK_H
#define __FALLBACK_H

enum via { VIA_FENTRY = 1, VIA_KPROBE = 2, VIA_TP = 3 };

struct event {
	enum via via;
	__u32 pid;
};

#endif /* __FALLBACK_H */
