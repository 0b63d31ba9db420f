/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __HISTPROBE_H
#define __HISTPROBE_H

#define MAX_SLOTS 24

struct hist {
	__u32 slots[MAX_SLOTS];
};

#endif /* __HISTPROBE_H */
