// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* A guest that attaches execsnoop and then never calls the host again: only the hard stop ends it. */
#include <stdio.h>
#include <bpf/libbpf.h>
#include "execsnoop.h"
#include "execsnoop.skel.h"

volatile unsigned long spins;

int main(void)
{
	struct execsnoop_bpf *skel = execsnoop_bpf__open_and_load();
	if (!skel || execsnoop_bpf__attach(skel))
		return 1;
	printf("READY\n");
	fflush(stdout);
	for (;;)
		spins++;
}
