/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __EXECSNOOP_H
#define __EXECSNOOP_H

#define TASK_COMM_LEN 16
#define MAX_ARGS 8
#define ARGSIZE 64

struct event {
	pid_t pid;
	pid_t ppid;
	uid_t uid;
	int retval;
	int args_count;
	char comm[TASK_COMM_LEN];
	/* argv[0..MAX_ARGS-1], one fixed-size slot each */
	char args[MAX_ARGS][ARGSIZE];
};

#endif /* __EXECSNOOP_H */
