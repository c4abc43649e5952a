/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Resource quantities parsed exactly as Kubernetes parses them ("500m", "1.5", "128Mi",
 * "1G", "1e3", "2Ki"): a signed decimal number with an optional binary suffix (Ki Mi Gi Ti
 * Pi Ei), decimal suffix (n u m k M G T P E) or decimal exponent (e/E). shoal keeps every
 * quantity as an integer count of thousandths ("milli-units"), which is exact for CPU and
 * for byte counts up to 9.2 PB; a value that does not fit is -ERANGE, a value finer than a
 * thousandth is rounded up (as Kubernetes rounds a CPU request up to 1m).
 */
#ifndef SHOAL_QUANTITY_H
#define SHOAL_QUANTITY_H

#include <stddef.h>
#include <stdint.h>

/* Parses s into milli-units. Returns 0, -EINVAL (not a quantity) or -ERANGE (too large). */
int quantity_parse_milli(const char *s, int64_t *milli);

/* The value in whole units, rounded up (bytes for memory, cores for "cpu"). */
int64_t quantity_milli_to_units(int64_t milli);

/* Formats milli-units canonically ("500m", "2", "128Mi" when exact in binary units, "1G"
 * when exact in decimal ones) into buf. Returns buf. */
char *quantity_format(int64_t milli, char *buf, size_t len);

#endif
