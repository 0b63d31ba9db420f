/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __BADPROBE_H
#define __BADPROBE_H

struct event {
	__u64 value;
};

#endif /* __BADPROBE_H */
