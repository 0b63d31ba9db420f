/* SPDX-License-Identifier: GPL-2.0 */
/* perfbuf: one record per getppid() of the target process, through a perf event array. */
#ifndef PERFBUF_H
#define PERFBUF_H
struct perf_record {
	__u32 pid;
	__u32 seq;
};
#endif
