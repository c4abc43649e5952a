// SPDX-License-Identifier: Apache-2.0
/*
 * Federation failover against real daemons (grace period 3 s, probes every 500 ms): a member
 * that stops has its replicas placed on the others once the grace period is over; when it
 * comes back the placement converges back, scaling up there before scaling down elsewhere,
 * so that the ready replicas summed over the members (sampled every 50 ms) never fall below
 * the total wanted.
 */
#define FED_GRACE "3s"
#include "fed_helpers.h"

static int setup(void **state)
{
	(void)state;
	static const char *const cpu[NMEM] = { "16", "16", "16" };
	return fed_start_all(cpu);
}

static int teardown(void **state)
{
	(void)state;
	return fed_stop_all();
}

/* Read c, b, then a: while converging back a only rises and b and c only fall, so the sum
 * read is the true sum at the moment a was read, or above it only by replicas b and c lost
 * meanwhile (never a false alarm). */
static long long ready_total(const char *name)
{
	long long n = 0;
	for (int i = NMEM - 1; i >= 0; i--)
		if (atomic_load(&mem_up[i]))
			n += member_ready(i, name);
	return n;
}

static void test_fed_failover_and_back(void **state)
{
	(void)state;
	req0(-1, "POST", FD_PATH, fd_json("fo", 10, weights3(1, 2, 2), "", ""), 201);
	WAIT_FOR(15000, replicas_are("fo", 2, 4, 4), "want 2/4/4, have %lld/%lld/%lld",
		 member_replicas(0, "fo"), member_replicas(1, "fo"), member_replicas(2, "fo"));
	WAIT_FOR(15000, ready_total("fo") == 10, "ready: %lld of 10", ready_total("fo"));

	/* a stops: after the grace period its 2 replicas are on b and c */
	atomic_store(&mem_up[0], false);
	long long t0 = mono_ms();
	assert_int_equal(shoald_stop(&mem[0]), 0);
	WAIT_FOR(20000, member_replicas(1, "fo") + member_replicas(2, "fo") == 10,
		 "failover: b and c hold %lld",
		 member_replicas(1, "fo") + member_replicas(2, "fo"));
	long long took = mono_ms() - t0;
	print_message("# failover took %lld ms (grace period 3000 ms)\n", took);
	assert_true(took >= 2000);  /* not before the grace period (counted from the last probe) */
	assert_true(took <= 13000); /* the grace period and at most 10 s more */
	assert_int_equal(member_replicas(1, "fo"), 5);
	assert_true(cluster_cond("a", "Offline", "True"));
	WAIT_FOR(15000, ready_total("fo") == 10, "ready on b and c: %lld", ready_total("fo"));

	/* scaled while a is away: 15 over b and c */
	req0(-1, "PATCH", FD_PATH "/fo", "{\"spec\":{\"replicas\":15}}", 200);
	WAIT_FOR(15000, member_replicas(1, "fo") + member_replicas(2, "fo") == 15,
		 "b and c hold %lld of 15", member_replicas(1, "fo") + member_replicas(2, "fo"));
	WAIT_FOR(15000, ready_total("fo") == 15, "ready on b and c: %lld", ready_total("fo"));

	/* a comes back: 3/6/6, a up first, the others down only as a's replicas are ready */
	assert_int_equal(shoald_restart(&mem[0]), 0);
	atomic_store(&mem_up[0], true);
	long long min_ready = 1 << 30, until = mono_ms() + 30000;
	bool done = false;
	while (!done && mono_ms() < until) {
		long long r = ready_total("fo");
		if (r < min_ready)
			min_ready = r;
		done = replicas_are("fo", 3, 6, 6) && member_ready(0, "fo") == 3 &&
		       member_ready(1, "fo") == 6 && member_ready(2, "fo") == 6;
		usleep(50000);
	}
	if (!done)
		fail_msg("converge back: want 3/6/6, have %lld/%lld/%lld (ready %lld/%lld/%lld)",
			 member_replicas(0, "fo"), member_replicas(1, "fo"),
			 member_replicas(2, "fo"), member_ready(0, "fo"), member_ready(1, "fo"),
			 member_ready(2, "fo"));
	print_message("# lowest ready total while converging back: %lld (bound 15)\n", min_ready);
	assert_true(min_ready >= 15);
	assert_true(cluster_cond("a", "Offline", "False"));
	req0(-1, "DELETE", FD_PATH "/fo", NULL, 200);
	WAIT_FOR(15000, replicas_are("fo", -1, -1, -1), "the members still hold it");
}

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_fed_failover_and_back))
