/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Source compatibility with upstream wasm-bpf guests: the whole guest API in one include. */
#ifndef EBPM_LIBBPF_WASM_H
#define EBPM_LIBBPF_WASM_H
#include <bpf/libbpf.h>
#endif
