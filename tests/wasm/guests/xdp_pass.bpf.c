// SPDX-License-Identifier: GPL-2.0
/* An XDP program: a type a wasm guest may load only when the policy allows xdp. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xdp_pass.h"

SEC("xdp")
int wasm_test_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
