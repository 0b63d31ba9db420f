// SPDX-License-Identifier: GPL-2.0
/* A guest that loads an XDP object: refused unless the policy allows xdp. */
#include <stdio.h>
#include <bpf/libbpf.h>
#include "xdp_pass.skel.h"

int main(void)
{
	struct xdp_pass_bpf *skel = xdp_pass_bpf__open_and_load();
	if (!skel) {
		printf("LOAD FAILED errno=%d\n", errno);
		return 1;
	}
	printf("LOADED\n");
	xdp_pass_bpf__destroy(skel);
	return 0;
}
