/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shoal's error codes. Functions return 0 or a negative errno; the two conditions that errno
 * has no name for are defined here, once, above errno's range.
 */
#ifndef SHOAL_ERRORS_H
#define SHOAL_ERRORS_H

#include <errno.h>

/* A compare-and-swap lost: the object changed since the revision the caller named. */
#define ECONFLICT 4001
/* The revision asked for is older than the history the store keeps (HTTP 410 Gone). */
#define ECOMPACTED 4002

/* strerror() that also knows ECONFLICT and ECOMPACTED; takes a positive or negative code. */
const char *shoal_strerror(int err);

#endif
