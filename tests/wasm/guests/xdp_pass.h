/* SPDX-License-Identifier: GPL-2.0 */
/* xdp_pass: nothing shared with userspace but the name of its counter map. */
#ifndef XDP_PASS_H
#define XDP_PASS_H
#define XDP_PASS_COUNTER "packets"
#endif
