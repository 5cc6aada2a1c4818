// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* The user's bucket: GCRA by compare-and-swap on the TAT (lib/dlb/bucket.h
 * semantics in whole ns), the lease the agent grants and the local share bucket. */
#pragma once

/* ---- Buckets ------------------------------------------------------------------------ */

/* The local bucket's TAT is changed by compare-and-swap rather than under the value's
 * spin lock (bpf_spin_lock disables interrupts around the section, which costs more than
 * the rest of the decision on a paravirtualised guest). An admission reads the TAT,
 * computes the next one and swaps it in if the TAT is still the one it read, else reads
 * again: every CPU decides on the TAT of every admission before it, as under the lock. A
 * limit writes nothing and is decided on the TAT it read. The agent's control program
 * stores the TAT whole (a swap after it reads again). A swap fails only when another CPU
 * admitted in between; after DLB_TAT_RETRIES failures in a row the head is limited (and
 * charge_local() leaves the TAT as it is). */
#define DLB_TAT_RETRIES (1U << 20)

static __always_inline __u64 tat_read(const struct dlb_xdp_user *u)
{
	return *(const volatile __u64 *)&u->tat_ns;
}

/* GCRA in whole nanoseconds (lib/dlb/bucket.h): admit iff max(TAT, now) + n*T - now <=
 * C*T. interval_ns == 0: a bucket that never leaks; TAT counts admitted units. One try:
 * 1 once *d is decided, 0 when the TAT changed between the read and the swap. */
static __always_inline int gcra_try(struct dlb_xdp_user *u, __u64 cap, __u64 t_ns, __u64 cost,
				    __u64 now, struct dlb_decision *d)
{
	__u64 tat = tat_read(u), base, next, limit;

	if (t_ns == 0) {
		if (tat + cost <= cap) {
			if (__sync_val_compare_and_swap(&u->tat_ns, tat, tat + cost) != tat)
				return 0;
			d->allowed = 1;
			d->remaining = cap - tat - cost;
		} else {
			d->allowed = 0;
			d->retry_ns = DLB_NEVER;
			d->remaining = tat < cap ? cap - tat : 0;
		}
		return 1;
	}
	base = tat > now ? tat : now;
	next = base + cost * t_ns;
	limit = cap * t_ns;
	if (next - now <= limit) {
		if (__sync_val_compare_and_swap(&u->tat_ns, tat, next) != tat)
			return 0;
		d->allowed = 1;
		d->remaining = (limit - (next - now)) / t_ns;
	} else {
		d->allowed = 0;
		d->retry_ns = next - now - limit;
		d->remaining = (limit - (base - now)) / t_ns;
	}
	return 1;
}

/* A leased admission also fills the local share bucket (one global unit is about T of
 * its TAT whatever the share): the agent sets that bucket to the global level without
 * this host's unused lease, so the local bucket then tracks the global level and never
 * admits, once the lease is spent, what the global bucket has no room for. One try, as
 * gcra_try(). */
static __always_inline int charge_try(struct dlb_xdp_user *u, __u64 local_t_ns, __u64 t_ns,
				      __u64 cost, __u64 now)
{
	__u64 tat, base;

	if (local_t_ns == 0) {
		__sync_fetch_and_add(&u->tat_ns, cost);
		return 1;
	}
	tat = tat_read(u);
	base = tat > now ? tat : now;
	return __sync_val_compare_and_swap(&u->tat_ns, tat, base + cost * t_ns) == tat;
}

static long tat_retry(__u32 idx, __u32 *cpu_arg);

static __always_inline void local_decide(struct dlb_scratch *sc, struct dlb_xdp_user *u,
					 __u64 cap, __u64 t_ns, __u64 cost, __u64 now,
					 struct dlb_decision *d)
{
	struct dlb_tat_op *op = &sc->tat_op;
	__u32 cpu;

	if (gcra_try(u, cap, t_ns, cost, now, d))
		return;
	op->cap = cap;
	op->t_ns = t_ns;
	op->cost = cost;
	op->now = now;
	op->decide = 1;
	op->done = 0;
	cpu = sc->scan.cpu;
	bpf_loop(DLB_TAT_RETRIES, tat_retry, &cpu, 0);
	if (op->done) {
		d->allowed = op->d.allowed;
		d->retry_ns = op->d.retry_ns;
		d->remaining = op->d.remaining;
	} else {
		d->allowed = 0;
		d->retry_ns = DLB_NS_PER_S;
		d->remaining = 0;
	}
}

static __always_inline void charge_local(struct dlb_scratch *sc, struct dlb_xdp_user *u,
					 const struct dlb_xdp_rule *r, __u64 now)
{
	struct dlb_tat_op *op = &sc->tat_op;
	__u32 cpu;

	if (charge_try(u, r->local_interval_ns, r->interval_ns, r->cost, now))
		return;
	op->t_ns = r->interval_ns;
	op->local_t_ns = r->local_interval_ns;
	op->cost = r->cost;
	op->now = now;
	op->decide = 0;
	op->done = 0;
	cpu = sc->scan.cpu;
	bpf_loop(DLB_TAT_RETRIES, tat_retry, &cpu, 0);
}

static long tat_retry(__u32 idx, __u32 *cpu_arg)
{
	struct dlb_scratch *sc = &dlb_scratch[*cpu_arg & (DLB_MAX_CPUS - 1)];
	struct dlb_tat_op *op = &sc->tat_op;
	struct dlb_xdp_user *u = user_of(&sc->key, sc->key.id_len, 0);

	if (!u)
		return 1;
	if (op->decide)
		op->done = gcra_try(u, op->cap, op->t_ns, op->cost, op->now, &op->d);
	else
		op->done = charge_try(u, op->local_t_ns, op->t_ns, op->cost, op->now);
	return op->done;
}

static __always_inline int take_lease(struct dlb_xdp_user *u, __s64 cost)
{
#pragma unroll
	for (int k = 0; k < 4; k++) {
		__s64 old = u->lease;
		if (old < cost)
			return 0;
		if (__sync_val_compare_and_swap(&u->lease, old, old - cost) == old)
			return 1;
	}
	return 0;
}
