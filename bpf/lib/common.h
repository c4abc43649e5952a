/* SPDX-License-Identifier: Apache-2.0 */
/* What every shoal BPF program starts with: kernel types (CO-RE), helpers, constants. */
#ifndef SHOAL_BPF_COMMON_H
#define SHOAL_BPF_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef offsetof
#define offsetof(t, m) __builtin_offsetof(t, m)
#endif

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define TC_ACT_REDIRECT 7

#endif
