// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Test program: on getppid() of one process, send a struct with known values of every kind.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "kinds.h"

/* process to watch */
const volatile __u32 targ_pid = 0;
/* added to u32 */
const volatile __s64 delta = 0;
/* copied into word */
const volatile char label[8] = "none";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct event *e;

	if (pid != targ_pid)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->u8 = 250;
	e->s8 = -5;
	e->u16 = 65000;
	e->s16 = -300;
	e->u32 = 4000000000u + delta;
	e->s32 = -70000;
	e->u64 = 18000000000000000000ull;
	e->s64 = -9000000000000000000ll;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	for (int i = 0; i < sizeof(e->word); i++)
		e->word[i] = label[i];
	e->arr[0] = 1;
	e->arr[1] = 2;
	e->arr[2] = 3;
	e->in.a = 7;
	e->in.b = -8;
	e->ins[0].a = 9;
	e->ins[0].b = 10;
	e->ins[1].a = 11;
	e->ins[1].b = -12;
	e->color = BLUE;
	e->bf_u = 5;
	e->bf_s = -3;
	e->bf_one = 1;
	e->flag = true;
	e->whole = 0x00020001;
	e->pid = pid;
	e->big = ((unsigned __int128)1 << 100) + 5;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
