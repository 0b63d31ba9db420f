// SPDX-License-Identifier: (GPL-2.0 OR BSD-3-Clause)
/* {{name}}: print process starts and exits, with how long each process lived.
 *
 * libbpf-bootstrap's `bootstrap`: the sched:sched_process_exec and sched:sched_process_exit
 * tracepoints, a hash map of start times, and a ring buffer to user space.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "{{name}}.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Report only processes that lived at least this many nanoseconds (0: report starts too). */
const volatile unsigned long long min_duration_ns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, pid_t);
	__type(value, u64);
} exec_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	unsigned fname_off = ctx->__data_loc_filename & 0xFFFF;
	pid_t pid = bpf_get_current_pid_tgid() >> 32;
	u64 ts = bpf_ktime_get_ns();
	struct event *e;

	bpf_map_update_elem(&exec_start, &pid, &ts, BPF_ANY);
	if (min_duration_ns)
		return 0;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->exit_event = false;
	e->pid = pid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_code = 0;
	e->duration_ns = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_str(e->filename, sizeof(e->filename), (void *)ctx + fname_off);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp/sched/sched_process_exit")
int handle_exit(struct trace_event_raw_sched_process_template *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u64 id = bpf_get_current_pid_tgid();
	pid_t pid = id >> 32, tid = (u32)id;
	u64 *start_ts, duration_ns = 0;
	struct event *e;

	if (pid != tid) /* a thread, not the whole process */
		return 0;
	start_ts = bpf_map_lookup_elem(&exec_start, &pid);
	if (start_ts)
		duration_ns = bpf_ktime_get_ns() - *start_ts;
	else if (min_duration_ns)
		return 0;
	bpf_map_delete_elem(&exec_start, &pid);
	if (min_duration_ns && duration_ns < min_duration_ns)
		return 0;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->exit_event = true;
	e->duration_ns = duration_ns;
	e->pid = pid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_code = (BPF_CORE_READ(task, exit_code) >> 8) & 0xff;
	e->filename[0] = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
