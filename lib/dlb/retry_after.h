/* Retry-After of a head refused without a bucket to ask: a head without identity under
 * `on_missing_identity: limit` (or without the client address trusted_proxies names),
 * and a new user that finds the table full under `on_table_full: limit`. One rule for
 * every form (the engine, the XDP agent that writes it into each rule for the program):
 *
 *   one emission interval T = 1 / leak_rate, rounded up to whole seconds, at least
 *   1 s; DLB_RETRY_AFTER_MAX_S for a rule that never leaks (and as the ceiling).
 *
 * T is when a fresh bucket of the rule would admit a request again after one: the
 * soonest a client that now gets an identity or a table slot could be told to retry.
 * Plain C99 without libc, for BPF C and C++ alike.
 */
#ifndef DLB_RETRY_AFTER_H_
#define DLB_RETRY_AFTER_H_

/* The largest Retry-After any form sends: a year. */
#define DLB_RETRY_AFTER_MAX_S (365ULL * 24 * 3600)

/* interval_ns: the rule's emission interval in ns, rounded up; 0 for a rule that never
 * leaks. */
static inline __UINT64_TYPE__ dlb_no_bucket_retry_after_s(__UINT64_TYPE__ interval_ns) {
	__UINT64_TYPE__ s;
	if (interval_ns == 0)
		return DLB_RETRY_AFTER_MAX_S;
	s = interval_ns / 1000000000ULL + (interval_ns % 1000000000ULL != 0);
	if (s < 1)
		s = 1;
	return s > DLB_RETRY_AFTER_MAX_S ? DLB_RETRY_AFTER_MAX_S : s;
}

#endif /* DLB_RETRY_AFTER_H_ */
