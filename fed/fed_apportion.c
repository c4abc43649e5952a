// SPDX-License-Identifier: Apache-2.0
/*
 * How a FederatedDeployment's replicas are split over clusters: pure functions, no I/O.
 *
 * The design choice: Webster / Sainte-Lague as a sequence of single seats (the highest
 * weight / (seats + 0.5) gets the next one). The sequence does not depend on the total, so
 * a split of 11 is the split of 10 plus one replica (house monotonicity), and bounds
 * (per-cluster min and max) fit in naturally: a cluster starts at its min and leaves the
 * race at its max. Exact ties go to the cluster that had more replicas before, then to the
 * first one, so a recomputation with unchanged inputs never moves a replica.
 */
#include <errno.h>
#include <stdint.h>

#include "fed.h"

static int check(int total, const struct fed_share *s, size_t n)
{
	if (total < 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!(s[i].weight >= 0) || s[i].min < 0 || (s[i].max >= 0 && s[i].max < s[i].min) ||
		    s[i].prev < 0)
			return -EINVAL;
	return 0;
}

static bool room(const struct fed_share *s)
{
	return s->max < 0 || s->out < s->max;
}

/* 1 when a's claim weight / (out + d) beats b's, -1 when b's does, 0 on an exact tie. */
static int cmp_quot(const struct fed_share *a, const struct fed_share *b, double d)
{
	/* a.w / (a.out + d) vs b.w / (b.out + d), cross-multiplied (denominators > 0) */
	double l = a->weight * (b->out + d), r = b->weight * (a->out + d);
	double eps = 1e-12 * (l > r ? l : r);
	return l > r + eps ? 1 : r > l + eps ? -1 : 0;
}

/* The cluster that gets the next replica, or -1. */
static int next_seat(const struct fed_share *s, size_t n)
{
	int best = -1;
	for (size_t i = 0; i < n; i++) {
		if (!room(&s[i]) || !(s[i].weight > 0))
			continue;
		if (best < 0) {
			best = (int)i;
			continue;
		}
		int c = cmp_quot(&s[i], &s[best], 0.5);
		if (c > 0 || (c == 0 && s[i].prev - s[i].out > s[best].prev - s[best].out))
			best = (int)i;
	}
	return best;
}

/* The cluster that gives a replica back (lowest weight / (out - 0.5) above its min), or -1. */
static int next_unseat(const struct fed_share *s, size_t n)
{
	int worst = -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i].out <= s[i].min)
			continue;
		if (worst < 0) {
			worst = (int)i;
			continue;
		}
		int c = cmp_quot(&s[i], &s[worst], -0.5);
		if (c < 0 || (c == 0 && s[i].out - s[i].prev > s[worst].out - s[worst].prev))
			worst = (int)i;
	}
	return worst;
}

static int fill(int left, struct fed_share *s, size_t n)
{
	while (left > 0) {
		int i = next_seat(s, n);
		if (i < 0)
			break;
		s[i].out++;
		left--;
	}
	return left;
}

/* The minimums exceed total: split total in proportion to them, each capped at its min. */
static int split_minimums(int total, struct fed_share *s, size_t n)
{
	struct fed_share t[n];
	for (size_t i = 0; i < n; i++)
		t[i] = (struct fed_share){ .weight = s[i].min, .max = s[i].min, .prev = s[i].prev };
	int left = fill(total, t, n);
	for (size_t i = 0; i < n; i++)
		s[i].out = t[i].out;
	return left;
}

int fed_apportion(int total, struct fed_share *s, size_t n)
{
	int err = check(total, s, n);
	if (err)
		return err;
	int64_t mins = 0;
	for (size_t i = 0; i < n; i++)
		mins += s[i].min;
	if (mins > total)
		return split_minimums(total, s, n);
	for (size_t i = 0; i < n; i++)
		s[i].out = s[i].min;
	return fill(total - (int)mins, s, n);
}

int fed_apportion_from(int total, struct fed_share *s, size_t n)
{
	int err = check(total, s, n);
	if (err)
		return err;
	int64_t mins = 0, have = 0;
	for (size_t i = 0; i < n; i++)
		mins += s[i].min;
	if (mins > total)
		return split_minimums(total, s, n);
	for (size_t i = 0; i < n; i++) {
		int v = s[i].prev;
		/* a cluster that has no weight any more keeps only its min */
		if (!(s[i].weight > 0))
			v = 0;
		if (v < s[i].min)
			v = s[i].min;
		if (s[i].max >= 0 && v > s[i].max)
			v = s[i].max;
		s[i].out = v;
		have += v;
	}
	while (have > total) {
		int i = next_unseat(s, n);
		if (i < 0)
			break;
		s[i].out--;
		have--;
	}
	return fill(total - (int)have, s, n);
}

int fed_duplicate(int total, struct fed_share *s, size_t n)
{
	int err = check(total, s, n);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		int v = total < s[i].min ? s[i].min : total;
		if (s[i].max >= 0 && v > s[i].max)
			v = s[i].max;
		s[i].out = v;
	}
	return 0;
}

int64_t fed_estimate(int64_t avail_cpu_m, int64_t avail_mem, int64_t pods_left, int64_t cpu_m,
		     int64_t mem)
{
	int64_t est = -1;
	if (avail_cpu_m < 0)
		avail_cpu_m = 0;
	if (avail_mem < 0)
		avail_mem = 0;
	if (cpu_m > 0)
		est = avail_cpu_m / cpu_m;
	if (mem > 0 && (est < 0 || avail_mem / mem < est))
		est = avail_mem / mem;
	if (est < 0 || (pods_left >= 0 && pods_left < est))
		est = pods_left < 0 ? 0 : pods_left;
	return est;
}
