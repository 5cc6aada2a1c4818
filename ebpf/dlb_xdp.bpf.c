// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* The XDP fallback's data path (docs/xdp.md): the packet engine's parse and decision
 * semantics (lib/dlb/packet/) on an ordinary Linux gateway host. By concern:
 *
 *   dlb_xdp_maps.h    constants, maps, the per-CPU scratch, counters
 *   dlb_xdp_parse.h   1. L2-L4: Ethernet with up to two VLAN tags, IPv4 with options,
 *                        IPv6 with a bounded chain of extension headers, TCP to a
 *                        configured service port
 *   dlb_xdp_stream.h  2. the client flow: where the next head starts, body bytes before
 *                        it, SYN/FIN/RST in window, heads held until their last packet
 *   dlb_xdp_scan.h    3. the head: method, target (its normal path), version, Host, the
 *                        identity and the body's framing, scanned with bpf_loop
 *   dlb_xdp_rules.h   4. rules: first match wins, the default last
 *   dlb_xdp_sha.h        SHA-256 of identities longer than a user key holds
 *   dlb_xdp_bucket.h  5. the user's bucket: a lease of the global bucket written by the
 *                        agent, the hold-off while Redis is full, a local GCRA bucket
 *   dlb_xdp_reply.h   6. limited heads: 429 + FIN to the client built in place (XDP_TX,
 *                        or handed to the TC program), RSTs to the server; the head
 *                        policies (refuse what cannot be decided, never pass it)
 *
 * This file: the program (dlb_xdp) and the agent's control program (dlb_xdp_control).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "dlb_bpf_csum.h"
#include "dlb_xdp.h"
/* The most bytes of a head the program holds and scans (its loops' bounds; the buffers
 * and their masks stay DLB_XDP_SCAN_BYTES). The small variant (-DDLB_XDP_SMALL,
 * dlb_xdp_small.bpf.o) holds half: the verifier walks the bounded loops over a head once
 * per word, so this bound drives much of its work; longer heads are refused there by
 * on_oversize_head, as here those over DLB_XDP_SCAN_BYTES. */
#ifdef DLB_XDP_SMALL
#define DLB_HEAD_BYTES DLB_XDP_SMALL_SCAN_BYTES
#else
#define DLB_HEAD_BYTES DLB_XDP_SCAN_BYTES
#endif
#define DLB_PATH_MAX_BYTES DLB_HEAD_BYTES
#define DLB_PATH_BYTE(path, i) ((path)[(i) & (DLB_XDP_SCAN_BYTES - 1)])
#include "dlb/path.h"

/* SHA-256 of long identities: its state is in the CPU's scratch (dlb_xdp_maps.h) */
struct dlb_sha256;
static __always_inline struct dlb_sha256 *dlb_sha_state(__u32 cpu);
#define DLB_SHA_STATE(cpu) dlb_sha_state(cpu)
#include "dlb_xdp_sha.h"

#include "dlb_xdp_maps.h"
#include "dlb_xdp_parse.h"
#include "dlb_xdp_scan.h"
#include "dlb_xdp_rules.h"
#include "dlb_xdp_bucket.h"
#include "dlb_xdp_stream.h"
#include "dlb_xdp_reply.h"

/* ---- The program ----------------------------------------------------------------- */

SEC("xdp")
int dlb_xdp(struct xdp_md *ctx)
{
	__u32 zero = 0;
	const struct dlb_xdp_config *cfg = bpf_map_lookup_elem(&dlb_config, &zero);
	struct dlb_xdp_counters *c = bpf_map_lookup_elem(&dlb_counters, &zero);
	struct dlb_view v = {};
	struct dlb_scratch *sc;
	struct dlb_xdp_flow_key *fk;
	struct dlb_xdp_flow *f;
	struct dlb_xdp_stream *st;
	const struct dlb_xdp_rule *r;
	struct dlb_xdp_user_key *key;
	struct dlb_xdp_user *u;
	struct dlb_decision d = {};
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 n, tstart, tend, rule;
	__u64 now;
	int p;

	if (!cfg || !c || !cfg->enabled)
		return XDP_PASS;
	if (cpu >= DLB_MAX_CPUS)
		return XDP_PASS;
	sc = &dlb_scratch[cpu];
	count(c, DLB_XDP_C_frames);

	p = parse_frame(ctx, cfg, &v);
	if (p != DLB_P_TCP) {
		if (p == DLB_P_NOT_IP)
			count(c, DLB_XDP_C_not_ip);
		else if (p == DLB_P_NOT_TCP)
			count(c, DLB_XDP_C_not_tcp);
		else if (p == DLB_P_FRAGMENT) {
			count(c, DLB_XDP_C_fragments);
			return cfg->on_fragment == DLB_XDP_FRAME_DROP ? XDP_DROP : XDP_PASS;
		} else {
			count(c, DLB_XDP_C_malformed_frames);
			return cfg->on_malformed_frame == DLB_XDP_FRAME_DROP ? XDP_DROP : XDP_PASS;
		}
		return XDP_PASS;
	}
	if (!((cfg->port_bits[(v.dport >> 6) & 1023] >> (v.dport & 63)) & 1)) {
		count(c, DLB_XDP_C_other_port);
		return XDP_PASS;
	}
	fk = &sc->fk;   /* in the scratch: the stack is full */
	flow_key_of(&v, fk);
	f = flow_lookup(&v, fk);
	if (f) {
		/* a SYN reuses the 4-tuple for a new connection: the old flow is over */
		if ((v.flags & (DLB_TCP_SYN | DLB_TCP_ACK)) == DLB_TCP_SYN)
			flow_delete(&v, fk);
		else
			return rejected_flow(ctx, sc, &v, f, fk, c);
	}
	if (dlb_replay_heads) {
		/* one frame run again and again (benchmarks, tests): each run reads it as
		 * its flow's next head */
		st = &sc->replay;
		st->next_seq = v.seq;
		st->body_left = 0;
		st->flags = 0;
	} else {
		st = bpf_map_lookup_elem(&dlb_streams, fk);
	}
	if ((v.flags & (DLB_TCP_SYN | DLB_TCP_ACK)) == DLB_TCP_SYN && !dlb_replay_heads) {
		if (v.payload_len) {
			/* data on a SYN (TCP Fast Open): not followed; the client sends it again */
			count(c, DLB_XDP_C_stream_untracked);
			return XDP_DROP;
		}
		stream_syn(&v, fk, st, bpf_ktime_get_ns(), c);
		return XDP_PASS;
	}
	if (v.payload_len == 0) {
		/* an RST or FIN exactly at the next byte ends the connection (RFC 5961) */
		if (st && (v.flags & (DLB_TCP_FIN | DLB_TCP_RST)) && v.seq == st->next_seq &&
		    st->body_left == 0)
			st->flags |= DLB_XDP_STREAM_CLOSED;
		count(c, DLB_XDP_C_no_payload);
		return XDP_PASS;
	}
	if (!st) {
		count(c, DLB_XDP_C_stream_untracked);
		return head_policy(ctx, sc, &v, fk, cfg->on_malformed_head, c);
	}
	now = bpf_ktime_get_ns();
	st->last_ns = now;
	if (st->flags & DLB_XDP_STREAM_NOT_HTTP)
		return XDP_PASS;
	{
		__u32 off = 0;
		int sv = stream_segment(st, v.seq, v.payload_len, &off, c);
		if (sv == DLB_ST_PASS)
			return XDP_PASS;
		if (sv == DLB_ST_DROP)
			return XDP_DROP;
		sc->part_len = 0;
		if (st->flags & DLB_XDP_STREAM_PARTIAL) {
			/* a head begun in earlier packets: its bytes first, this packet's after */
			if (!dlb_restore_held(cpu)) {
				count(c, DLB_XDP_C_stream_untracked);   /* evicted */
				return head_policy(ctx, sc, &v, fk, cfg->on_malformed_head, c);
			}
		} else {
			off = skip_empty_lines(ctx, &v, off);
			if (off >= v.payload_len) {
				st->next_seq = v.seq + v.payload_len;
				return XDP_PASS;
			}
		}
		sc->head_off = off;
	}
	/* After a decision that passes the head: the stream moves past the head and the
	 * body bytes this packet holds (set below, once the head's length is known). */
	sc->stream_next = v.seq + v.payload_len;
	sc->stream_body = 0;

	n = v.payload_len - sc->head_off;
	if (n > DLB_HEAD_BYTES - sc->part_len)
		n = DLB_HEAD_BYTES - sc->part_len;

	struct dlb_scan *sp = &sc->scan;
	__builtin_memset(sp, 0, sizeof(*sp));
	sp->cpu = cpu;
	sp->held = sc->part_len;
	sp->n = sc->part_len + n;
	sp->payload_off = v.payload_off + sc->head_off;
	sp->id_name_len = cfg->id_name_len;
	sp->max_id = cfg->max_identity_bytes;
	sp->max_lines = cfg->max_header_lines;
	__builtin_memcpy(sc->id_name, cfg->id_name, DLB_XDP_MAX_ID_NAME);
	__builtin_memcpy(sc->id_fold, cfg->id_fold, DLB_XDP_MAX_ID_NAME);
	__builtin_memcpy(sc->id_mask, cfg->id_mask, DLB_XDP_MAX_ID_NAME);
	if (dlb_scan_head(ctx, sc) == DLB_H_ERROR)
		return XDP_DROP;               /* unreadable: the client sends it again */
	note_scan(sp);
	if (sp->result == DLB_H_MORE || sp->result == DLB_H_SLOW) {
		/* No end of head yet: the server cannot act on it before its last byte, so
		 * this packet passes and the head's bytes are held until the packet that ends
		 * it. A head longer than the program holds is refused, never passed. */
		__u32 total = sc->part_len + (v.payload_len - sc->head_off);
		if (total >= cfg->max_head_bytes || total >= DLB_HEAD_BYTES) {
			count(c, DLB_XDP_C_oversize_heads);
			return head_policy(ctx, sc, &v, fk, cfg->on_oversize_head, c);
		}
		sc->part_len = total;
		if (sp->result == DLB_H_SLOW ||
		    bpf_map_update_elem(&dlb_partial, fk, &sc->part_len, BPF_ANY)) {
			count(c, DLB_XDP_C_slow_path_split);
			return head_policy(ctx, sc, &v, fk, cfg->on_oversize_head, c);
		}
		st->flags |= DLB_XDP_STREAM_PARTIAL;
		st->next_seq = v.seq + v.payload_len;
		count(c, DLB_XDP_C_split_heads_held);
		return XDP_PASS;
	}
	if (sp->result == DLB_H_NOT_HTTP) {
		/* Not HTTP where a head starts: the connection's first bytes follow
		 * on_not_http; later, the stream is out of step with the server's. */
		if (!(st->flags & DLB_XDP_STREAM_HEADS) && cfg->on_not_http == DLB_XDP_HEAD_FORWARD) {
			st->flags |= DLB_XDP_STREAM_NOT_HTTP;
			count(c, DLB_XDP_C_not_http_passed);
			return XDP_PASS;
		}
		count(c, DLB_XDP_C_not_http);
		return head_policy(ctx, sc, &v, fk,
				   st->flags & DLB_XDP_STREAM_HEADS ? cfg->on_malformed_head :
								      cfg->on_not_http, c);
	}
	if (sp->result == DLB_H_MALFORMED) {
		count(c, DLB_XDP_C_malformed_heads);
		return head_policy(ctx, sc, &v, fk, cfg->on_malformed_head, c);
	}
	if (sp->head_end > cfg->max_head_bytes) {
		count(c, DLB_XDP_C_oversize_heads);
		return head_policy(ctx, sc, &v, fk, cfg->on_oversize_head, c);
	}
	st->flags |= DLB_XDP_STREAM_HEADS;
	if (sp->have_te) {
		/* a chunked (or otherwise encoded) body: where the next head starts is not
		 * followed by this program (and on HTTP/1.0 the message is faulty) */
		count(c, DLB_XDP_C_unframed_bodies);
		return head_policy(ctx, sc, &v, fk, cfg->on_malformed_head, c);
	}
	{
		/* the head's bytes start part_len bytes before this packet's head_off */
		__u64 body_end = (__u64)sc->head_off + sp->head_end + (sp->have_cl ? sp->cl : 0) -
				 sc->part_len;
		sc->cut_keep = 0;
		if (body_end < v.payload_len) {
			/* Another request's bytes follow in this packet (pipelining): this head is
			 * decided, and if it passes the packet is cut after its request
			 * (stream_pass); the client sends the rest again, and the next head is
			 * decided then, first in its packet, so no head is charged twice. */
			if (body_end == 0 || body_end > DLB_CUT_MAX) {
				count(c, DLB_XDP_C_pipelined_refused);
				return head_policy(ctx, sc, &v, fk, cfg->on_malformed_head, c);
			}
			sc->cut_keep = (__u32)body_end;
			sc->stream_next = v.seq + (__u32)body_end;
			sc->stream_body = 0;
		} else {
			sc->stream_body = (__u32)(body_end - v.payload_len);
		}
	}
	tstart = sp->sp1;                         /* 1 + SP = first target byte */
	tend = sp->q ? sp->q - 1 : sp->sp2 - 1;
	sc->abs_form = 0;
	if (head_byte(cpu, tstart) != '/' && head_byte(cpu, tstart) != '*') {
		/* Absolute form: matched on its path, its authority for Host, as in the
		 * engine. Any other form (CONNECT's authority) is refused, never passed. */
		if (!dlb_absolute_target(cpu)) {
			count(c, DLB_XDP_C_slow_path_authority_form);
			return head_policy(ctx, sc, &v, fk, cfg->on_malformed_head, c);
		}
		count(c, DLB_XDP_C_absolute_form);
		tstart = sc->abs_path_off;
		tend = tstart + sc->abs_path_len;
	}
	if (head_byte(cpu, tstart) == '/' && !dlb_path_normal(cpu, tstart, tend - tstart)) {
		count(c, DLB_XDP_C_paths_not_normal);
		return head_policy(ctx, sc, &v, fk, cfg->on_malformed_head, c);
	}
	count(c, DLB_XDP_C_heads);

	{
		struct dlb_match *m = &sc->match;
		__u32 count = cfg->rule_count;

		m->cpu = cpu;
		m->method_off = 0;
		m->method_len = sp->sp1 - 1;
		m->path_off = tstart;
		m->path_len = tend - tstart;
		if (sc->abs_form) {
			/* an absolute-form target's authority replaces Host (RFC 9112 3.2.2) */
			m->host_off = sc->abs_host_off;
			m->host_len = host_without_port(cpu, sc->abs_host_off, sc->abs_host_len);
		} else {
			m->host_off = sp->host_off;
			m->host_len = sp->have_host ?
					      host_without_port(cpu, sp->host_off, sp->host_len) : 0;
		}
		m->count = count;
		m->found = 0;
		if (count == 0 || count > DLB_XDP_MAX_RULES)
			return stream_pass(ctx, sc, st, &v, c);
		bpf_loop(DLB_XDP_MAX_RULES / DLB_RULES_PER_CALL, match_rule, &cpu, 0);
		rule = m->found;
	}
	r = bpf_map_lookup_elem(&dlb_rules, &rule);
	if (!r)
		return stream_pass(ctx, sc, st, &v, c);

	key = &sc->key;
	/* The short key's bytes; a long ID zeroes the rest of the key too. */
	__builtin_memset(key, 0, sizeof(struct dlb_xdp_user_skey));
	key->rule = rule;
	if (sp->have_id && sp->id_len > 0) {
		__u32 len = sp->id_len;
		if (len > DLB_XDP_MAX_ID) {
			/* longer than a key holds: keyed by its digest, the user's one bucket */
			if (!dlb_id_digest(cpu)) {
				count(c, DLB_XDP_C_oversize_heads);
				return head_policy(ctx, sc, &v, fk, cfg->on_oversize_head, c);
			}
			count(c, DLB_XDP_C_identity_digests);
		} else {
			key->kind = DLB_XDP_KEY_IDENTITY;
			key->id_len = len;
			copy_id(sc, key, sp->id_off, len);
		}
	} else {
		count(c, DLB_XDP_C_identity_missing);
		if (cfg->on_missing_identity == DLB_XDP_MISSING_PASS) {
			count(c, DLB_XDP_C_identity_missing_passed);
			return stream_pass(ctx, sc, st, &v, c);
		}
		if (cfg->on_missing_identity == DLB_XDP_MISSING_LIMIT) {
			count(c, DLB_XDP_C_identity_missing_limited);
			d.allowed = 0;
			/* lib/dlb/retry_after.h: the same Retry-After as the engine's */
			d.retry_ns = (__u64)r->no_bucket_retry_s * DLB_NS_PER_S;
			goto decided;
		}
		count(c, DLB_XDP_C_identity_source_ip);
		key->kind = v.ipv == 4 ? DLB_XDP_KEY_IPV4 : DLB_XDP_KEY_IPV6;
		key->id_len = v.ipv == 4 ? 4 : 16;
		__builtin_memcpy(key->id, v.src, 16);
		if (v.ipv == 4)
			__builtin_memset(key->id + 4, 0, 12);
	}

	u = user_of(key, key->id_len, 1);
	if (!u) {
		count(c, DLB_XDP_C_table_full);
		d.allowed = r->on_table_full == DLB_XDP_OVERFLOW_ALLOW;
		d.retry_ns = (__u64)r->no_bucket_retry_s * DLB_NS_PER_S;
		goto decided;
	}
	u->last_seen_ns = now;
	if (r->mode == DLB_XDP_MODE_LOCAL) {
		count(c, DLB_XDP_C_local_decisions);
		local_decide(sc, u, r->capacity, r->interval_ns, r->cost, now, &d);
		goto decided;
	}
	/* synced (strict is decided as synced: a packet path never waits on Redis) */
	__sync_fetch_and_add(&u->demand, 1);
	if (cfg->store_down) {
		if (r->on_store_failure == DLB_XDP_FAIL_OPEN) {
			/* Admitted, and owed: the agent charges it once the store is back
			 * (bounded, so that a long outage at a high rate cannot overflow). */
			count(c, DLB_XDP_C_store_down_open);
			d.allowed = 1;
			if (u->debt < DLB_MAX_OWED)
				__sync_fetch_and_add(&u->debt, r->cost);
			goto decided;
		}
		if (r->on_store_failure == DLB_XDP_FAIL_CLOSED) {
			count(c, DLB_XDP_C_store_down_closed);
			d.allowed = 0;
			d.retry_ns = DLB_NS_PER_S;
			goto decided;
		}
	} else if (take_lease(u, r->cost)) {
		count(c, DLB_XDP_C_leased);
		d.allowed = 1;
		charge_local(sc, u, r, now);
		goto decided;
	} else if (now < u->hold_until_ns) {
		count(c, DLB_XDP_C_held);
		d.allowed = 0;
		d.retry_ns = u->hold_until_ns - now;
		d.remaining = 0;
		goto decided;
	}
	count(c, DLB_XDP_C_local_decisions);
	local_decide(sc, u, r->local_capacity, r->local_interval_ns, r->cost, now, &d);
	if (d.allowed) {
		__sync_fetch_and_add(&u->debt, r->cost);
	} else if (!cfg->store_down && r->action == DLB_XDP_ACTION_REJECT) {
		/* No lease, this host's share used, and Redis has not reported the bucket
		 * full: the global bucket may well have room (a new user, a burst within
		 * the limit), so a 429 now could be a false one. The head is dropped
		 * instead; its demand asks the agent's next round for a lease, which the
		 * agent keeps for the user while it waits (`waited`), and the client's
		 * retransmission is decided then: leased, or held with its 429. */
		u->waited = (__u32)(now >> 20) | 1;
		count(c, DLB_XDP_C_lease_waits);
		return XDP_DROP;
	}

decided:
	note_last(rule, &d);
	if (d.allowed) {
		count(c, DLB_XDP_C_allowed);
		c->rule_allowed[rule & (DLB_XDP_MAX_RULES - 1)]++;
		return stream_pass(ctx, sc, st, &v, c);
	}
	count(c, DLB_XDP_C_limited);
	c->rule_limited[rule & (DLB_XDP_MAX_RULES - 1)]++;
	if (r->action == DLB_XDP_ACTION_SHADOW) {
		count(c, DLB_XDP_C_shadow_limited);
		return stream_pass(ctx, sc, st, &v, c);
	}
	if (r->action == DLB_XDP_ACTION_DROP) {
		count(c, DLB_XDP_C_dropped);
		return XDP_DROP;
	}
	return reject(ctx, sc, &v, r, &d, fk, c);
}

/* The agent's atomic operations on user buckets: run with bpf_prog_test_run over an
 * array of struct dlb_xdp_ctl (never attached). */
SEC("xdp")
int dlb_xdp_control(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

#pragma unroll
	for (int i = 0; i < DLB_XDP_CTL_BATCH; i++) {
		struct dlb_xdp_ctl *cmd = data + i * sizeof(struct dlb_xdp_ctl);
		struct dlb_xdp_user *u;

		if ((void *)(cmd + 1) > end)
			break;
		if (cmd->op == DLB_XDP_CTL_NONE)
			continue;
		u = user_of(&cmd->key, cmd->key.id_len, 0);
		if (!u) {
			cmd->found = 0;
			continue;
		}
		cmd->found = 1;
		if (cmd->op == DLB_XDP_CTL_COLLECT) {
			cmd->out_lease = __sync_lock_test_and_set(&u->lease, 0);
			cmd->out_demand = __sync_lock_test_and_set(&u->demand, 0);
			cmd->out_debt = __sync_lock_test_and_set(&u->debt, 0);
			cmd->out_last_seen_ns = u->last_seen_ns;
			cmd->out_waited = u->waited;
		} else if (cmd->op == DLB_XDP_CTL_GRANT) {
			if (cmd->in_lease > 0)
				__sync_fetch_and_add(&u->lease, cmd->in_lease);
			u->hold_until_ns = cmd->in_hold_until_ns;
			if (cmd->in_tat_unit_ns) {
				/* Local admissions since the collect are debt not in Redis'
				 * level yet: they stay in the local bucket. */
				bpf_spin_lock(&u->lock);
				u->tat_ns = cmd->in_tat_ns + u->debt * cmd->in_tat_unit_ns;
				bpf_spin_unlock(&u->lock);
			}
			if (cmd->in_debt)
				__sync_fetch_and_add(&u->debt, cmd->in_debt);
		} else if (cmd->op == DLB_XDP_CTL_ADD_DEBT) {
			if (cmd->in_debt)
				__sync_fetch_and_add(&u->debt, cmd->in_debt);
		}
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL"; /* the SPDX line's GPL-2.0 alternative, as the kernel names it */
