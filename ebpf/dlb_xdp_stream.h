// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* Client-to-server flows (dlb_xdp.h, struct dlb_xdp_stream): where the next head
 * starts, body bytes before it, SYN/FIN/RST in window only, heads held across packets. */
#pragma once

/* ---- Streams ---------------------------------------------------------------------- */

/* What a data segment's bytes are, from the flow's stream. */
enum dlb_stream_verdict {
	DLB_ST_PASS,                   /* body bytes, or bytes passed before: pass */
	DLB_ST_DROP,                   /* after a gap, may hold a head: the client sends it again */
	DLB_ST_HEAD,                   /* a head starts at *off of the payload */
};

/* The client's SYN: a new stream, unless the flow is live (in use, not closed, seen in
 * the last DLB_XDP_STREAM_IDLE_NS): a SYN in the middle of a connection changes nothing
 * (RFC 5961; Linux answers it with a challenge ACK). A SYN sent again is its own SYN. */
static __always_inline void stream_syn(const struct dlb_view *v, const struct dlb_xdp_flow_key *fk,
				       const struct dlb_xdp_stream *st, __u64 now,
				       struct dlb_xdp_counters *c)
{
	struct dlb_xdp_stream fresh = {.next_seq = v->seq + 1, .last_ns = now};

	if (st && !(st->flags & DLB_XDP_STREAM_CLOSED) && now - st->last_ns < DLB_XDP_STREAM_IDLE_NS &&
	    st->next_seq != v->seq + 1) {
		count(c, DLB_XDP_C_syn_ignored);
		return;
	}
	bpf_map_update_elem(&dlb_streams, fk, &fresh, BPF_ANY);
	count(c, DLB_XDP_C_streams_opened);
}

/* A data segment [seq, seq + len) against the stream. h = next_seq + body_left is where
 * the next head starts: it is known from the Content-Length whatever arrived of the body
 * in between. A segment wholly before h passes (body, in order or after a gap, or bytes
 * passed before: a retransmission; the server keeps its first copy); one that starts
 * after h is dropped (the head's start is in a gap: the client sends it again); one that
 * holds h starts a head at *off (DLB_ST_HEAD, next_seq moved to h). */
static __always_inline int stream_segment(struct dlb_xdp_stream *st, __u32 seq, __u32 len,
					  __u32 *off, struct dlb_xdp_counters *c)
{
	__u32 h = st->next_seq + st->body_left;
	__s32 behind = (__s32)(st->next_seq - seq);   /* > 0: starts before next_seq */

	if (behind > (__s32)DLB_XDP_STREAM_BEHIND) {
		count(c, DLB_XDP_C_stream_out_of_order);
		return DLB_ST_DROP;
	}
	if ((__s32)(seq + len - h) <= 0) {
		/* every byte before the next head */
		__s32 ahead = (__s32)(seq + len - st->next_seq);
		if (ahead <= 0) {
			count(c, DLB_XDP_C_stream_retransmits);
			return DLB_ST_PASS;
		}
		if (behind >= 0) {
			/* in order: the body moves on */
			st->next_seq += (__u32)ahead;
			st->body_left -= (__u32)ahead;
		}
		count(c, DLB_XDP_C_body_segments);
		return DLB_ST_PASS;
	}
	if ((__s32)(seq - h) > 0) {
		count(c, DLB_XDP_C_stream_out_of_order);
		return DLB_ST_DROP;
	}
	*off = h - seq;
	st->next_seq = h;
	st->body_left = 0;
	return DLB_ST_HEAD;
}

/* Empty lines before a request line are ignored (RFC 9112 2.2): the offset of the first
 * byte at or after `off` that is not CR or LF, up to DLB_MAX_CRLF of them. */
#define DLB_MAX_CRLF 8
static __always_inline __u32 skip_empty_lines(struct xdp_md *ctx, const struct dlb_view *v, __u32 off)
{
	const __u8 *data = (const __u8 *)(long)ctx->data;
	const __u8 *end = (const __u8 *)(long)ctx->data_end;

#pragma unroll
	for (int k = 0; k < DLB_MAX_CRLF; k++) {
		const __u8 *b = data + ((v->payload_off + off) & 0x3fff);
		if (off >= v->payload_len || b + 1 > end || (*b != '\r' && *b != '\n'))
			break;
		off++;
	}
	return off;
}

/* The held bytes of the flow's begun head (sc->fk) into sc->head, their count into
 * sc->part_len; 0 when the flow holds none (evicted). Global: its copy loop is verified
 * once, apart from the program. */
__noinline long dlb_restore_held(__u32 cpu)
{
	struct dlb_scratch *sc = &dlb_scratch[cpu & (DLB_MAX_CPUS - 1)];
	const struct dlb_xdp_partial *pb = bpf_map_lookup_elem(&dlb_partial, &sc->fk);
	__u32 held;

	if (!pb)
		return 0;
	held = pb->len;
	if (held == 0 || held >= DLB_HEAD_BYTES)
		return 0;
#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_HEAD_BYTES / 8; k++) {
		if (8 * k >= held)
			break;
		((__u64 *)sc->head)[k] = ((const __u64 *)pb->head)[k];
	}
	sc->part_len = held;
	return held;
}

__noinline int dlb_cut_segment(struct xdp_md *ctx, struct dlb_scratch *sc);   /* dlb_xdp_reply.h */

/* A decided head passes: the stream moves past this packet, with the body bytes still
 * to come (sc->stream_next, sc->stream_body, set once the head was scanned). A packet
 * with another request after this one (pipelining) is cut after this one
 * (sc->cut_keep): the stream moves to the next request's first byte, which the client
 * sends again, and it is decided then, first in its packet. Were the cut to fail, the
 * packet is dropped and the stream left as it was. */
static __always_inline int stream_pass(struct xdp_md *ctx, struct dlb_scratch *sc,
				       struct dlb_xdp_stream *st, const struct dlb_view *v,
				       struct dlb_xdp_counters *c)
{
	if (sc->cut_keep) {
		__builtin_memcpy(&sc->emit.v, v, sizeof(*v));
		if (dlb_cut_segment(ctx, sc)) {
			count(c, DLB_XDP_C_pipelined_cut_failed);
			return XDP_DROP;
		}
		count(c, DLB_XDP_C_pipelined_cut);
	}
	st->next_seq = sc->stream_next;
	st->body_left = sc->stream_body;
	if (st->flags & DLB_XDP_STREAM_PARTIAL) {
		st->flags &= ~DLB_XDP_STREAM_PARTIAL;
		bpf_map_delete_elem(&dlb_partial, &sc->fk);
	}
	return XDP_PASS;
}
