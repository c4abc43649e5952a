/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON merge patch (RFC 7386), the body of PATCH with application/merge-patch+json, and
 * structural equality of JSON values (object key order never matters; 1 and 1.0 are equal),
 * which decides whether a write changed an object's spec (and so bumps its generation).
 */
#ifndef SHOAL_JSON_MERGE_H
#define SHOAL_JSON_MERGE_H

#include <jansson.h>
#include <stdbool.h>

/* Returns a new value: target with patch applied (RFC 7386 MergePatch). target may be NULL
 * (no value). Neither argument is changed. NULL with errno = ENOMEM on allocation failure. */
json_t *json_merge_patch(const json_t *target, const json_t *patch);

/* The merge patch that turns from into to (json_merge_patch(from, result) equals to), or
 * NULL with errno set. When both are objects the patch holds only what changed: {} when
 * nothing did. Arrays are replaced whole, as RFC 7386 does. Members whose value in to is
 * null cannot be expressed by a merge patch and are left out. */
json_t *json_merge_diff(const json_t *from, const json_t *to);

/* True when a and b are the same JSON value, ignoring the order of object members; numbers
 * compare by value (1 equals 1.0). NULL equals only NULL. */
bool json_merge_equal(const json_t *a, const json_t *b);

/* Removes from v, in place, every object member whose value is null, at any depth (also in
 * objects inside arrays): the form in which the API stores an object, since it drops null
 * members. Comparing a wanted value in that form with a stored one tells a real change from
 * a null the server will never keep. NULL and non-containers are left as they are. */
void json_merge_drop_nulls(json_t *v);

#endif
