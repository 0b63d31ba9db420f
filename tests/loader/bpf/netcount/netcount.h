/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __NETCOUNT_H
#define __NETCOUNT_H

enum hook { HOOK_XDP = 0, HOOK_TC = 1 };

#endif /* __NETCOUNT_H */
