// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* Rules: method, normalized path prefix (case folded per rule) and host, first match
 * wins, the default last. */
#pragma once

/* ---- Rules ------------------------------------------------------------------------ */

/* Rule idx against the request: 1 once m->found is set (the default rule always is).
 * Global for the same reason as dlb_scan_one: checked once, not once per round of the
 * callback's verification. */
__noinline long dlb_match_one(__u32 idx, __u32 cpu_arg)
{
	struct dlb_match *m = &dlb_scratch[cpu_arg & (DLB_MAX_CPUS - 1)].match;
	const struct dlb_xdp_rule *r;
	__u32 cpu = m->cpu;
	__u32 key = idx;

	if (idx >= m->count)
		return 1;
	r = bpf_map_lookup_elem(&dlb_rules, &key);
	if (!r)
		return 1;
	if (idx + 1 == m->count) {     /* the default rule */
		m->found = idx;
		return 1;
	}
	if (r->method_len) {
		if (r->method_len != m->method_len)
			return 0;
		for (int k = 0; k < DLB_XDP_MAX_METHOD; k++) {
			if (k >= r->method_len)
				break;
			if (head_byte(cpu, m->method_off + k) != r->method[k])
				return 0;
		}
	}
	if (r->path_len) {
		if (r->path_len > m->path_len)
			return 0;
		for (int k = 0; k < DLB_XDP_MAX_PREFIX; k++) {
			__u8 c;
			if (k >= r->path_len)
				break;
			c = head_byte(cpu, m->path_off + k);
			if (r->fold_case && c >= 'A' && c <= 'Z')
				c |= 0x20;   /* the prefix is folded by the agent */
			if (c != r->path_prefix[k])
				return 0;
		}
	}
	if (r->host_len) {
		if (r->host_len != m->host_len)
			return 0;
		for (int k = 0; k < DLB_XDP_MAX_HOST; k++) {
			__u8 c;
			if (k >= r->host_len)
				break;
			c = head_byte(cpu, m->host_off + k);
			if (c >= 'A' && c <= 'Z')
				c |= 0x20;
			if (c != r->host[k])
				return 0;
		}
	}
	m->found = idx;
	return 1;
}

/* Rules per bpf_loop call (the CPU read again for each, as in scan_step). */
#define DLB_RULES_PER_CALL 2

static long match_rule(__u32 idx, __u32 *cpu_arg)
{
#pragma unroll
	for (int j = 0; j < DLB_RULES_PER_CALL; j++) {
		if (dlb_match_one(idx * DLB_RULES_PER_CALL + j, *(volatile __u32 *)cpu_arg))
			return 1;
	}
	return 0;
}

/* The host without its port: "[v6]:port", "name:port". */
static __always_inline __u32 host_without_port(__u32 cpu, __u32 off, __u32 len)
{
	__u32 n = len;
	for (int k = 0; k < 6; k++) {     /* ":" and up to 5 digits */
		__u8 c;
		if (n == 0)
			break;
		c = head_byte(cpu, off + n - 1);
		if (c == ':')
			return n - 1;
		if (c < '0' || c > '9')
			break;
		n--;
	}
	return len;
}
