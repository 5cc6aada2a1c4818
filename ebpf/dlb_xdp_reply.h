// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* Frames the program sends: segments built in place (the 429 + FIN to the client,
 * RSTs to the server and the client), rejected flows, the head policies, the test
 * record of the last head. */
#pragma once

/* ---- Frames we send ------------------------------------------------------------------ */

struct dlb_pseudo {
	__u32 len;
	__u8 zero[3];
	__u8 proto;
};

/* Rewrites the frame into one TCP segment (fresh IP header without options, 20-byte TCP
 * header, sc->payload[0, payload_len)) toward the client (MACs swapped) or the server.
 * L2 and VLAN tags are kept. */
/* A global function: verified once, not at each of its call sites. */
__noinline int dlb_emit_segment(struct xdp_md *ctx, struct dlb_scratch *sc)
{
	if (!ctx || !sc)
		return -1;
	const struct dlb_view *v = &sc->emit.v;
	int to_client = sc->emit.to_client;
	__u32 seq = sc->emit.seq, ack = sc->emit.ack, payload_len = sc->emit.payload_len;
	__u8 flags = sc->emit.flags;
	__u32 ip_len = v->ipv == 4 ? 20 : 40;
	__u32 l4_len, total, padded;
	__u8 *hdr = sc->hdr;
	__u8 *tcp;
	const __u8 *src = to_client ? v->dst : v->src;
	const __u8 *dst = to_client ? v->src : v->dst;
	__s64 sum;
	struct dlb_pseudo ph = {};
	void *data, *end;
	__u32 l3 = v->l3_off;
	int delta;

	if (payload_len > DLB_OUT_PAYLOAD)
		return -1;
	l4_len = 20 + payload_len;
	__builtin_memset(hdr, 0, 64);
	if (v->ipv == 4) {
		struct iphdr *ip = (struct iphdr *)hdr;
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = bpf_htons(20 + l4_len);
		ip->frag_off = bpf_htons(0x4000);
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		__builtin_memcpy(&ip->saddr, src, 4);
		__builtin_memcpy(&ip->daddr, dst, 4);
		ip->check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)hdr, 20, 0));
		tcp = hdr + 20;
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)hdr;
		ip6->version = 6;
		ip6->payload_len = bpf_htons(l4_len);
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, src, 16);
		__builtin_memcpy(&ip6->daddr, dst, 16);
		tcp = hdr + 40;
	}
	{
		struct tcphdr *th = (struct tcphdr *)tcp;
		th->source = bpf_htons(to_client ? v->dport : v->sport);
		th->dest = bpf_htons(to_client ? v->sport : v->dport);
		th->seq = bpf_htonl(seq);
		th->ack_seq = bpf_htonl(ack);
		th->doff = 5;
		((__u8 *)th)[13] = flags;
		th->window = (flags & 0x04) ? 0 : bpf_htons(8192);
	}
	/* TCP checksum: pseudo-header, header, payload padded with zeros to 4 bytes. */
	padded = (payload_len + 3) & ~3U;
#pragma unroll
	for (int k = 0; k < 3; k++)
		sc->payload[(payload_len + k) & (2 * DLB_OUT_PAYLOAD - 1)] = 0;
	ph.len = bpf_htonl(l4_len);
	ph.proto = IPPROTO_TCP;
	sum = bpf_csum_diff(0, 0, (__be32 *)(v->ipv == 4 ? hdr + 12 : hdr + 8),
			    v->ipv == 4 ? 8 : 32, 0);
	if (sum < 0)
		return -1;
	/* pseudo-header: protocol and length in one 32-bit word */
	{
		__u32 w = bpf_htonl((IPPROTO_TCP << 16) | l4_len);
		sum = bpf_csum_diff(0, 0, &w, 4, sum);
	}
	sum = bpf_csum_diff(0, 0, (__be32 *)tcp, 20, sum);
	if (padded > 0) {
		__u32 c0 = padded > 512 ? 512 : padded;
		__u32 c1 = padded - c0;
		c0 &= 0x3fc;
		if (c0 > 512)
			return -1;
		sum = bpf_csum_diff(0, 0, (__be32 *)sc->payload, c0, sum);
		if (c1) {
			c1 &= 0x3fc;
			if (c1 > 512)
				return -1;
			sum = bpf_csum_diff(0, 0, (__be32 *)(sc->payload + 512), c1, sum);
		}
	}
	if (sum < 0)
		return -1;
	((struct tcphdr *)tcp)->check = csum_fold(sum);

	/* Resize and write. The L2 header (with its tags) is saved first: the frame may
	 * grow at its tail or, where the driver left no tailroom (a linear skb on veth),
	 * at its head, whose XDP_PACKET_HEADROOM every driver reserves. */
	if (l3 > 22 || l3 < 14)
		return -1;
	if (bpf_xdp_load_bytes(ctx, 0, sc->l2, l3))
		return -1;
	if (to_client) {
		__u8 mac[6];
		__builtin_memcpy(mac, sc->l2, 6);
		__builtin_memcpy(sc->l2, sc->l2 + 6, 6);
		__builtin_memcpy(sc->l2 + 6, mac, 6);
	}
	total = l3 + ip_len + l4_len;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	delta = (int)total - (int)(end - data);
	if (delta > 0) {
		if (bpf_xdp_adjust_tail(ctx, delta) && bpf_xdp_adjust_head(ctx, -delta))
			return -1;
	} else if (delta < 0) {
		if (bpf_xdp_adjust_tail(ctx, delta))
			return -1;
	}
	if (bpf_xdp_store_bytes(ctx, 0, sc->l2, l3))
		return -1;
	if (bpf_xdp_store_bytes(ctx, l3, hdr, v->ipv == 4 ? 40 : 60))
		return -1;
	if (payload_len) {
		__u32 n = payload_len & (DLB_OUT_PAYLOAD * 2 - 1);
		if (n == 0 || n > DLB_OUT_PAYLOAD)
			return -1;
		if (bpf_xdp_store_bytes(ctx, l3 + ip_len + 20, sc->payload, n))
			return -1;
	}
	return 0;
}

static __always_inline int emit_segment(struct xdp_md *ctx, struct dlb_scratch *sc,
					const struct dlb_view *v, int to_client, __u32 seq,
					__u32 ack, __u8 flags, __u32 payload_len)
{
	__builtin_memcpy(&sc->emit.v, v, sizeof(*v));
	sc->emit.to_client = to_client;
	sc->emit.seq = seq;
	sc->emit.ack = ack;
	sc->emit.flags = flags;
	sc->emit.payload_len = payload_len;
	return dlb_emit_segment(ctx, sc);
}

/* The largest first request (head and body) a pipelined packet can be cut after: its bytes
 * are copied into sc->payload for the checksum. */
#define DLB_CUT_MAX (2 * DLB_OUT_PAYLOAD)

/* Cuts the segment sc->emit.v after its first sc->cut_keep payload bytes: the IP length
 * (and the IPv4 header checksum) and the TCP checksum are written for what is kept, the
 * IP and TCP headers and their options are kept as they are. The server acknowledges
 * only the kept bytes, so the client's TCP sends the rest again. 0, or -1 when the frame
 * could not be changed. Global: verified once. */
__noinline int dlb_cut_segment(struct xdp_md *ctx, struct dlb_scratch *sc)
{
	if (!ctx || !sc)
		return -1;
	const struct dlb_view *v = &sc->emit.v;
	__u32 keep = sc->cut_keep, l3 = v->l3_off, l4 = v->l4_off, poff = v->payload_off;
	__u32 thl = poff - l4, iphl = l4 - l3, l4_len, padded;
	__u8 *hdr = sc->hdr;
	__s64 sum;
	__u16 check;
	int delta;

	if (keep == 0 || keep >= v->payload_len || keep > DLB_CUT_MAX || l4 < l3 || poff < l4 ||
	    thl < 20 || thl > 60 || (thl & 3) || iphl < 20 || iphl > 0x3ff || poff > 0x3fff)
		return -1;
	l4_len = thl + keep;
	/* the sizes masked where the verifier sees it (their bounds were checked above) */
	if (bpf_xdp_load_bytes(ctx, poff, sc->payload, dlb_keep_mask(keep - 1, DLB_CUT_MAX - 1) + 1))
		return -1;
	thl = dlb_keep_mask(thl, 63);
	if (thl < 20)
		return -1;
	padded = (keep + 3) & ~3U;
#pragma unroll
	for (int k = 0; k < 3; k++)
		sc->payload[(keep + k) & (2 * DLB_OUT_PAYLOAD - 1)] = 0;
	/* TCP checksum: pseudo-header, header (its checksum zero), the kept payload */
	if (bpf_xdp_load_bytes(ctx, l4, hdr, thl))
		return -1;
	hdr[16] = 0;
	hdr[17] = 0;
	sum = bpf_csum_diff(0, 0, (__be32 *)v->src, v->ipv == 4 ? 4 : 16, 0);
	sum = bpf_csum_diff(0, 0, (__be32 *)v->dst, v->ipv == 4 ? 4 : 16, sum);
	{
		__u32 w = bpf_htonl((IPPROTO_TCP << 16) | l4_len);
		sum = bpf_csum_diff(0, 0, &w, 4, sum);
	}
	sum = bpf_csum_diff(0, 0, (__be32 *)hdr, thl, sum);
#pragma unroll
	for (int c = 0; c < DLB_CUT_MAX / 512; c++) {
		__u32 n;
		if (512 * c >= padded)
			break;
		n = padded - 512 * c;
		if (n > 512)
			n = 512;
		n &= 0x3fc;
		if (n == 0 || n > 512)
			return -1;
		sum = bpf_csum_diff(0, 0, (__be32 *)(sc->payload + 512 * c), n, sum);
	}
	if (sum < 0)
		return -1;
	check = csum_fold(sum);
	if (bpf_xdp_store_bytes(ctx, l4 + 16, &check, 2))
		return -1;
	/* the IP length: IPv4's total length and header checksum, IPv6's payload length */
	if (v->ipv == 4) {
		iphl = dlb_keep_mask(iphl, 63);
		if (iphl < 20 || iphl > 60 || bpf_xdp_load_bytes(ctx, l3, hdr, iphl))
			return -1;
		*(__u16 *)(hdr + 2) = bpf_htons(iphl + l4_len);
		hdr[10] = 0;
		hdr[11] = 0;
		sum = bpf_csum_diff(0, 0, (__be32 *)hdr, iphl, 0);
		if (sum < 0)
			return -1;
		*(__u16 *)(hdr + 10) = csum_fold(sum);
		if (bpf_xdp_store_bytes(ctx, l3, hdr, 12))
			return -1;
	} else {
		__u16 plen = bpf_htons(iphl - 40 + l4_len);
		if (bpf_xdp_store_bytes(ctx, l3 + 4, &plen, 2))
			return -1;
	}
	delta = (int)(poff + keep) - (int)bpf_xdp_get_buff_len(ctx);
	if (delta >= 0 || bpf_xdp_adjust_tail(ctx, delta))
		return -1;
	return 0;
}

static __always_inline __u32 put_piece(struct dlb_scratch *sc, __u32 off,
				       const struct dlb_xdp_rule *r, int piece)
{
	__u32 po = r->tmpl_off[piece & 7] & (DLB_XDP_TMPL_BYTES - 1);
	__u32 pl = r->tmpl_len[piece & 7] & (DLB_XDP_TMPL_BYTES - 1);
	__u32 o = off & (DLB_OUT_PAYLOAD / 2 - 1);

	if (off >= DLB_OUT_PAYLOAD / 2 || pl == 0)
		return off;
	if (po + pl > DLB_XDP_TMPL_BYTES)
		return off;
	bpf_probe_read_kernel(sc->payload + o, pl, r->tmpl + po);
	return o + pl;
}

static __always_inline __u32 digits_of(__u64 v)
{
	__u32 d = 1;
#pragma unroll
	for (int k = 0; k < 19; k++) {
		if (v >= 10) {
			v /= 10;
			d++;
		}
	}
	return d;
}

/* The digit count and the offset returned pass through launder(): the verifier then
 * checks the code after a number once, not once per count it could have. */
static __always_inline __u32 put_number(struct dlb_scratch *sc, __u32 off, __u64 v)
{
	__u32 d = launder(&sc->scan, digits_of(v)) & 31;
#pragma unroll
	for (int k = 0; k < 20; k++) {
		if (k < d) {
			sc->payload[(off + d - 1 - k) & (DLB_OUT_PAYLOAD - 1)] = '0' + v % 10;
			v /= 10;
		}
	}
	return launder(&sc->scan, off + d);
}

static __always_inline void flow_key_of(const struct dlb_view *v, struct dlb_xdp_flow_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->src, v->src, 16);
	__builtin_memcpy(k->dst, v->dst, 16);
	k->sport = v->sport;
	k->dport = v->dport;
	k->family = v->ipv;
}

/* Which flows may be in dlb_rejected, so that a segment of any other flow skips the
 * lookup (the LRU map's lookup is about 30 ns of every segment here): per slot (a hash
 * of the client's address and both ports), a count of the map's entries whose flow
 * hashes there, incremented before an insert and decremented after a delete that removed
 * an entry. A slot at 0 has no entry. Counts only err high (an entry the LRU evicted, an
 * insert that failed, a flow inserted twice, the agent's ClearState); such a slot costs
 * the lookup, as every segment did without the filter. */
#define DLB_FLOW_SLOT_BITS 14
static __u32 dlb_flow_slots[1 << DLB_FLOW_SLOT_BITS];

static __always_inline __u32 flow_slot(const struct dlb_view *v)
{
	const __u32 *a = (const __u32 *)v->src;
	__u32 h = a[0] ^ a[1] ^ a[2] ^ a[3] ^ ((__u32)v->sport << 16 | v->dport);

	return (h * 0x9e3779b1U) >> (32 - DLB_FLOW_SLOT_BITS);
}

static __always_inline struct dlb_xdp_flow *flow_lookup(const struct dlb_view *v,
							const struct dlb_xdp_flow_key *k)
{
	if (!*(volatile __u32 *)&dlb_flow_slots[flow_slot(v)])
		return 0;
	return bpf_map_lookup_elem(&dlb_rejected, k);
}

static __always_inline void flow_insert(const struct dlb_view *v, const struct dlb_xdp_flow_key *k,
					const struct dlb_xdp_flow *f)
{
	__sync_fetch_and_add(&dlb_flow_slots[flow_slot(v)], 1);
	bpf_map_update_elem(&dlb_rejected, k, f, BPF_ANY);
}

static __always_inline void flow_delete(const struct dlb_view *v, const struct dlb_xdp_flow_key *k)
{
	if (bpf_map_delete_elem(&dlb_rejected, k) == 0)
		__sync_fetch_and_sub(&dlb_flow_slots[flow_slot(v)], 1);
}

static __always_inline __u32 segment_end(const struct dlb_view *v)
{
	__u32 e = v->seq + v->payload_len;
	if (v->flags & 0x02)
		e++;
	if (v->flags & 0x01)
		e++;
	return e;
}

#ifdef DLB_XDP_SMALL
/* The small variant formats the 429's numbers in global functions, each verified once:
 * inlined, their unrolled digit loops are verified again on every path into reject()
 * (about a quarter of the full program's count), at the cost of two calls per number
 * on the 429's path. The full program keeps them inline (its measured hot path). */
__noinline long dlb_put_number(__u32 cpu, __u32 off, __u64 v)
{
	return put_number(&dlb_scratch[cpu & (DLB_MAX_CPUS - 1)], off, v);
}

__noinline long dlb_digits_of(__u64 v)
{
	return digits_of(v);
}
#define DLB_PUT_NUMBER(sc, off, v) dlb_put_number((sc)->scan.cpu, (off), (v))
#define DLB_DIGITS_OF(v) dlb_digits_of(v)
#else
#define DLB_PUT_NUMBER(sc, off, v) put_number((sc), (off), (v))
#define DLB_DIGITS_OF(v) digits_of(v)
#endif

/* The reset head policy: the head becomes a RST to the server (it expects this very
 * sequence number); the client's retransmission then gets a RST. */
static __always_inline int reset_head(struct xdp_md *ctx, struct dlb_scratch *sc,
				      const struct dlb_view *v, const struct dlb_xdp_flow_key *fk,
				      struct dlb_xdp_counters *c)
{
	struct dlb_xdp_flow fv = {.server_next_seq = v->seq, .server_reset = 1};

	if (emit_segment(ctx, sc, v, 0, v->seq, 0, 0x04, 0))
		return XDP_DROP;
	flow_insert(v, fk, &fv);
	bpf_map_delete_elem(&dlb_streams, fk);   /* the connection ends here */
	bpf_map_delete_elem(&dlb_partial, fk);
	count(c, DLB_XDP_C_server_resets);
	return XDP_PASS;
}

/* 429 + FIN to the client (XDP_TX); the flow is remembered so that the server gets
 * its RST from the client's next segment. A frame that cannot grow to hold the 429 (a
 * short last segment of a head where the driver leaves no tailroom: veth with
 * page-pool copies gives a frame its headroom only) refuses the head as the reset
 * policy does: dropped without an answer, the client would send it again and again. */
static __always_inline int reject(struct xdp_md *ctx, struct dlb_scratch *sc,
				  const struct dlb_view *v, const struct dlb_xdp_rule *r,
				  const struct dlb_decision *d, const struct dlb_xdp_flow_key *fk,
				  struct dlb_xdp_counters *c)
{
	__u64 retry_s;
	__u64 remaining = d->remaining > 0 ? d->remaining : 0;
	__u32 off = 0;
	struct dlb_xdp_flow fv = {};

	if (d->retry_ns >= DLB_NEVER - 1)
		retry_s = DLB_XDP_RETRY_MAX_S;
	else if (d->retry_ns == 0)
		retry_s = 1;
	else
		retry_s = (d->retry_ns + DLB_NS_PER_S - 1) / DLB_NS_PER_S;
	if (retry_s > DLB_XDP_RETRY_MAX_S)
		retry_s = DLB_XDP_RETRY_MAX_S;

	off = put_piece(sc, off, r, 0);
	off = DLB_PUT_NUMBER(sc, off, r->body_static_len + DLB_DIGITS_OF(retry_s));
	off = put_piece(sc, off, r, 1);
	off = DLB_PUT_NUMBER(sc, off, retry_s);
	off = put_piece(sc, off, r, 2);
	off = DLB_PUT_NUMBER(sc, off, remaining);
	off = put_piece(sc, off, r, 3);
	off = DLB_PUT_NUMBER(sc, off, retry_s);
	off = put_piece(sc, off, r, 4);
	off = DLB_PUT_NUMBER(sc, off, retry_s);
	off = put_piece(sc, off, r, 5);

	fv.server_next_seq = v->seq;
	if (emit_segment(ctx, sc, v, 1, v->ack, segment_end(v), 0x19 /* FIN PSH ACK */, off)) {
		count(c, DLB_XDP_C_reject_failed);
		return reset_head(ctx, sc, v, fk, c);
	}
	count(c, DLB_XDP_C_rejected);
	bpf_map_delete_elem(&dlb_streams, fk);   /* the connection ends with the 429 */
	bpf_map_delete_elem(&dlb_partial, fk);
	{
		__u32 zero = 0;
		__u32 *tc_on = bpf_map_lookup_elem(&dlb_tc_on, &zero);
		if (tc_on && *tc_on && bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct dlb_xdp_tc_meta)) == 0) {
			void *data = (void *)(long)ctx->data;
			struct dlb_xdp_tc_meta *meta = (void *)(long)ctx->data_meta;
			if ((void *)(meta + 1) <= data) {
				meta->magic = DLB_XDP_TC_MAGIC;
				meta->server_seq = bpf_htonl(v->seq);
				/* the TC program resets the server; the client's next pure ACK
				 * (of the 429) is dropped, what follows gets a RST */
				fv.server_reset = 2;
				flow_insert(v, fk, &fv);
				count(c, DLB_XDP_C_tc_rejects);
				return XDP_PASS;
			}
		}
	}
	flow_insert(v, fk, &fv);
	return XDP_TX;
}

/* A segment of a flow we answered with a 429 (or reset): the first becomes a RST to the
 * server at the byte it expects; after that the client gets a RST. */
static __always_inline int rejected_flow(struct xdp_md *ctx, struct dlb_scratch *sc,
					 const struct dlb_view *v, struct dlb_xdp_flow *f,
					 const struct dlb_xdp_flow_key *fk, struct dlb_xdp_counters *c)
{
	if (f->server_reset == 2 && v->payload_len == 0 && !(v->flags & 0x05)) {
		/* the ACK of the 429 handed to the TC program: the server is gone already */
		count(c, DLB_XDP_C_rejected_flow_dropped);
		return XDP_DROP;
	}
	if (!f->server_reset) {
		f->server_reset = 1;
		if (emit_segment(ctx, sc, v, 0, f->server_next_seq, 0, 0x04 /* RST */, 0))
			return XDP_DROP;
		count(c, DLB_XDP_C_server_resets);
		return XDP_PASS;
	}
	if (v->flags & 0x04) {
		flow_delete(v, fk);
		count(c, DLB_XDP_C_rejected_flow_dropped);
		return XDP_DROP;
	}
	flow_delete(v, fk);
	if (emit_segment(ctx, sc, v, 1, v->ack, segment_end(v), 0x14 /* RST ACK */, 0))
		return XDP_DROP;
	count(c, DLB_XDP_C_client_resets);
	return XDP_TX;
}

static __always_inline int head_policy(struct xdp_md *ctx, struct dlb_scratch *sc,
				       const struct dlb_view *v, const struct dlb_xdp_flow_key *fk,
				       __u8 policy, struct dlb_xdp_counters *c)
{
	if (policy == DLB_XDP_HEAD_DROP)
		return XDP_DROP;
	if (policy == DLB_XDP_HEAD_RESET)
		return reset_head(ctx, sc, v, fk, c);
	return XDP_PASS;
}

/* This CPU's record of its last head, or NULL when the program keeps none. */
static __always_inline struct dlb_xdp_last *last_record(void)
{
	__u32 zero = 0;

	return dlb_record_last ? bpf_map_lookup_elem(&dlb_last, &zero) : NULL;
}

static __always_inline void note_last(__u32 rule, const struct dlb_decision *d)
{
	struct dlb_xdp_last *l = last_record();

	if (!l)
		return;
	l->rule = rule;
	l->allowed = d->allowed;
	l->retry_after_ns = d->allowed ? 0 : d->retry_ns;
	l->remaining = d->remaining;
	l->seq++;
}

/* The last head scanned, for tests that compare the scan with its specification. */
static __always_inline void note_scan(const struct dlb_scan *s)
{
	struct dlb_xdp_last *l = last_record();

	if (!l)
		return;
	l->scan_result = s->result;
	l->scan_sp1 = s->sp1;
	l->scan_sp2 = s->sp2;
	l->scan_q = s->q;
	l->scan_head_end = s->head_end;
	l->scan_host_off = s->have_host ? s->host_off : 0;
	l->scan_host_len = s->have_host ? s->host_len + 1 : 0;
	l->scan_id_off = s->have_id ? s->id_off : 0;
	l->scan_id_len = s->have_id ? s->id_len + 1 : 0;
	l->scan_seq++;
}

/* Word k of an ID of len bytes at src: the bytes past len are zero. */
static __always_inline __u64 id_word(const __u8 *src, int k, __u32 len)
{
	__u64 w = *(const __u64 *)(src + 8 * k);
	__u32 have = len > 8 * (__u32)k ? len - 8 * (__u32)k : 0;

	if (have >= 8)
		return w;
	return have ? w & ((1ULL << (8 * have)) - 1) : 0;
}

/* The ID's bytes [off, off + len) of the head into key->id, zero past len. A short ID
 * (the short key's DLB_XDP_SHORT_ID bytes) a word at a time: the head buffer is followed
 * by more scratch, so the words read past the head's end stay inside the map value, and
 * their bytes past len are masked off. */
static __always_inline void copy_id(struct dlb_scratch *sc, struct dlb_xdp_user_key *key,
				    __u32 off, __u32 len)
{
	const __u8 *src = sc->head + (off & DLB_SCAN_MASK);

	if (len <= DLB_XDP_SHORT_ID) {
		__u64 *dst = (__u64 *)key->id;
#pragma unroll
		for (int k = 0; k < DLB_XDP_SHORT_ID / 8; k++)
			dst[k] = id_word(src, k, len);
		return;
	}
	__builtin_memset(key->id + DLB_XDP_SHORT_ID, 0, DLB_XDP_MAX_ID - DLB_XDP_SHORT_ID);
	bpf_probe_read_kernel(key->id, len & (DLB_XDP_MAX_ID * 2 - 1), src);
}

/* The user key of an identity longer than a key holds (the scan's id_off and id_len in
 * the CPU's scratch): kind DLB_XDP_KEY_DIGEST, the first DLB_XDP_DIGEST_BYTES bytes of
 * SHA-256 of the identity's bytes, which are dlb::DigestUserId of the ID: the agent names
 * the same Redis bucket as the library and the appliance (dlb::AppendRedisKey). A digest
 * key is a short key (the rest of sc->key is zero already). 1, or 0 when the ID cannot be
 * read. Global: verified once, apart from the program. */
__noinline long dlb_id_digest(__u32 cpu)
{
	struct dlb_scratch *sc = &dlb_scratch[cpu & (DLB_MAX_CPUS - 1)];
	__u32 off = sc->scan.id_off, len = sc->scan.id_len;
	struct dlb_xdp_user_key *key = &sc->key;

	if (len == 0 || len > DLB_SHA_MAX_LEN || off >= DLB_HEAD_BYTES ||
	    len > DLB_HEAD_BYTES - off)
		return 0;
	if (bpf_probe_read_kernel(sc->sha.msg, len & (DLB_SHA_MSG_BYTES - 1),
				  sc->head + (off & DLB_SCAN_MASK)))
		return 0;
	if (!dlb_sha256_run(cpu, len))
		return 0;
	key->kind = DLB_XDP_KEY_DIGEST;
	key->id_len = DLB_XDP_DIGEST_BYTES;
#pragma unroll
	for (int i = 0; i < 4; i++)
		*(__u32 *)(key->id + 4 * i) = bpf_htonl(sc->sha.h[i]);
	key->id[DLB_XDP_DIGEST_BYTES] = 0;   /* 16 bytes written, 15 kept: zero past id_len */
	return 1;
}
