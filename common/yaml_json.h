/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kubernetes-style YAML to JSON (jansson) and back, on libyaml.
 *
 * The one design choice: plain scalars are typed the way Kubernetes' own decoder
 * (sigs.k8s.io/yaml, on go-yaml v2) types them, so that a manifest means the same to shoalctl
 * as to kubectl. That is YAML 1.2's core schema (true/false, null/~/empty, decimal and 0x/0o
 * integers, floats with an exponent) plus go-yaml's YAML 1.1 leftovers: a leading 0 means
 * octal ("0755" is 493), "_" separators are dropped ("1_000" is 1000), 0b binary, and
 * yes/no/on/off/y/n are booleans. Quoted scalars, block scalars and "!!str" always stay strings.
 * A float with an integral value becomes a JSON integer ("1e3" is 1000), as Go's JSON encoder
 * writes it; .inf and .nan have no JSON form and are errors. Timestamps stay strings (and are
 * quoted on output, as kubectl does, for readers that would take them for dates).
 * Mapping keys become strings (true -> "true", 0x10 -> "16"). Anchors, aliases and "<<" merge
 * keys are resolved by copying; a duplicate key is an error.
 */
#ifndef SHOAL_YAML_JSON_H
#define SHOAL_YAML_JSON_H

#include <jansson.h>
#include <stddef.h>

/*
 * Parses a stream of YAML documents (separated by "---") or of JSON texts into a JSON array
 * holding one element per non-empty document, in order. Returns NULL on error and writes
 * "line L, column C: problem" (1-based) into err (errlen bytes).
 */
json_t *yj_parse(const char *buf, size_t len, char *err, size_t errlen);

/* Writes v as one block-style YAML document (no "---"), keys in the object's order, strings
 * quoted where a plain scalar would read back as another type. Returns a malloc'd string, or
 * NULL with errno set. */
char *yj_emit(const json_t *v);

/* The JSON value a plain (unquoted) scalar stands for, as described above; NULL when the
 * scalar has no JSON form (.inf, .nan). Exposed for tests and for shoalctl's --set style. */
json_t *yj_plain_scalar(const char *s, size_t len);

#endif
