// SPDX-License-Identifier: GPL-2.0
// Copyright (c) 2020 Anton Protopopov
// Adapted from bcc's libbpf-tools/tcpconnect.bpf.c for ebpm. Kernels without kprobes cannot
// run the original (kprobe/tcp_v4_connect): this version watches TCP state changes through
// the sock:inet_sock_set_state tracepoint and reports every move to SYN_SENT, which happens in
// the connecting task's context (before the source port is chosen, so none is reported).
// tp_btf is preferred; the classic tracepoint is its fallback.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "tcpconnect.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* Trace this process id only, 0 for all */
const volatile pid_t filter_pid = 0;
/* Trace this user id only, -1 for all */
const volatile uid_t filter_uid = -1;
/* Trace connections to this port only, 0 for all */
const volatile __u16 filter_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline int
trace_connect(__u16 family, __u16 dport, const void *saddr, const void *daddr,
	      int addrlen)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32;
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	struct event *e;

	if (filter_pid && pid != filter_pid)
		return 0;
	if (filter_uid != (uid_t)-1 && uid != filter_uid)
		return 0;
	if (filter_port && dport != filter_port)
		return 0;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	bpf_probe_read_kernel(e->saddr, addrlen & 0x1f, saddr);
	bpf_probe_read_kernel(e->daddr, addrlen & 0x1f, daddr);
	e->af = family;
	e->pid = pid;
	e->uid = uid;
	e->dport = dport;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcp_set_state_btf, const struct sock *sk, int oldstate, int newstate)
{
	__u16 family, dport;

	if (newstate != TCP_SYN_SENT || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET)
		return trace_connect(family, dport,
				     &sk->__sk_common.skc_rcv_saddr, &sk->__sk_common.skc_daddr, 4);
	if (family == AF_INET6)
		return trace_connect(family, dport,
				     &sk->__sk_common.skc_v6_rcv_saddr,
				     &sk->__sk_common.skc_v6_daddr, 16);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int tcp_set_state_tp(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->newstate != TCP_SYN_SENT || ctx->protocol != IPPROTO_TCP)
		return 0;
	if (ctx->family == AF_INET)
		return trace_connect(ctx->family, ctx->dport, ctx->saddr, ctx->daddr, 4);
	return trace_connect(ctx->family, ctx->dport, ctx->saddr_v6, ctx->daddr_v6, 16);
}

char LICENSE[] SEC("license") = "GPL";
