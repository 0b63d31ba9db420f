/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __RINGPOS_H
#define __RINGPOS_H

struct event {
	__u64 seq;
	__u64 cons;  /* the consumer position the kernel saw before this record */
};

#endif /* __RINGPOS_H */
