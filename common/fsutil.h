/* SPDX-License-Identifier: Apache-2.0 */
/* Small file-system helpers shared by shoald, the agent and the data plane. */
#ifndef SHOAL_FSUTIL_H
#define SHOAL_FSUTIL_H

#include <sys/types.h>

/*
 * Creates directory path and any missing parents, each with mode (an existing one is left
 * as it is). Returns 0, -ENAMETOOLONG or -EINVAL for a path that is too long or empty, or
 * mkdir's -errno.
 */
int fs_mkdir_p(const char *path, mode_t mode);

#endif
