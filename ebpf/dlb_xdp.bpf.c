// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* The XDP fallback's data path (docs/xdp.md): the packet engine's parse
 * and decision semantics (lib/dlb/packet/) for request heads that are complete in one
 * packet, on an ordinary Linux gateway host.
 *
 *   1. L2-L4: Ethernet with up to two VLAN tags, IPv4 with options (fragments passed
 *      or dropped, counted), IPv6 with a bounded chain of extension headers, TCP to a
 *      configured service port.
 *   2. A request head at the start of the payload: method, target, Host and the
 *      identity header (name configurable, case-insensitive, OWS trimmed, length
 *      bounded). The head is copied into a per-CPU scratch buffer and scanned with
 *      bpf_loop, so the verifier checks the loop body once whatever the head's length.
 *      Heads that do not end inside the packet go to the slow path: passed, counted.
 *   3. Rules (first match wins, default last) and the user's bucket: a lease of the
 *      global bucket written by the agent, the hold-off the agent sets when Redis is
 *      full, and a local GCRA bucket (lib/dlb/bucket.h semantics, whole ns).
 *   4. Limited heads: 429 + FIN to the client built in place (XDP_TX); the local server
 *      never sees the head, and the client's next segment of that flow becomes a RST to
 *      the server at the sequence number the server expects, so it frees the
 *      connection. drop and shadow as in the engine.
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
#define DLB_PATH_MAX_BYTES DLB_XDP_SCAN_BYTES
#define DLB_PATH_BYTE(path, i) ((path)[(i) & (DLB_XDP_SCAN_BYTES - 1)])
#include "dlb/path.h"

#define DLB_MAX_CPUS 256
#define DLB_SCAN_MASK (DLB_XDP_SCAN_BYTES - 1)
#define DLB_OUT_PAYLOAD 1024
#define DLB_NS_PER_S 1000000000ULL
#define DLB_NEVER 0x7fffffffffffffffULL
#define DLB_MAX_OWED (1ULL << 30)          /* units owed for admissions under open */

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dlb_xdp_config);
} dlb_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DLB_XDP_MAX_RULES);
	__type(key, __u32);
	__type(value, struct dlb_xdp_rule);
} dlb_rules SEC(".maps");

/* Users by key length (dlb_xdp.h): IDs up to DLB_XDP_SHORT_ID bytes in the short map,
 * longer ones in dlb_users; user_of() looks a key up in its map. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);          /* resized by the agent before load */
	__type(key, struct dlb_xdp_user_skey);
	__type(value, struct dlb_xdp_user);
} dlb_users_short SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);          /* resized by the agent before load */
	__type(key, struct dlb_xdp_user_key);
	__type(value, struct dlb_xdp_user);
} dlb_users SEC(".maps");

/* The user bucket of a key, in the map its id_len picks (the short map's key is the
 * key's first sizeof(struct dlb_xdp_user_skey) bytes, zero past id_len); with `create`,
 * a fresh bucket is added when there is none. Each map has its own lookup call: a call
 * that may see either map is not inlined by the verifier and costs an indirect call (the
 * compiler may share the calls that add a user between the maps: once per new user). */
/* A fresh user's value: zeros, in global data rather than on the stack. */
static __u64 dlb_fresh_user[sizeof(struct dlb_xdp_user) / 8];

static __always_inline struct dlb_xdp_user *user_of(const void *key, __u32 id_len, int create)
{
	struct dlb_xdp_user *u;

	if (id_len <= DLB_XDP_SHORT_ID) {
		u = bpf_map_lookup_elem(&dlb_users_short, key);
		if (u || !create)
			return u;
		bpf_map_update_elem(&dlb_users_short, key, dlb_fresh_user, BPF_NOEXIST);
		return bpf_map_lookup_elem(&dlb_users_short, key);
	}
	u = bpf_map_lookup_elem(&dlb_users, key);
	if (u || !create)
		return u;
	bpf_map_update_elem(&dlb_users, key, dlb_fresh_user, BPF_NOEXIST);
	return bpf_map_lookup_elem(&dlb_users, key);
}

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct dlb_xdp_flow_key);
	__type(value, struct dlb_xdp_flow);
} dlb_rejected SEC(".maps");

/* Client-to-server flows of the service ports (dlb_xdp.h, struct dlb_xdp_stream). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);          /* resized by the agent before load */
	__type(key, struct dlb_xdp_flow_key);
	__type(value, struct dlb_xdp_stream);
} dlb_streams SEC(".maps");

/* Heads begun and not ended, by flow (dlb_xdp.h, struct dlb_xdp_partial). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);           /* resized by the agent before load */
	__type(key, struct dlb_xdp_flow_key);
	__type(value, struct dlb_xdp_partial);
} dlb_partial SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dlb_xdp_counters);
} dlb_counters SEC(".maps");

/* 1 while the TC program is attached (see struct dlb_xdp_tc_meta). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} dlb_tc_on SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dlb_xdp_last);
} dlb_last SEC(".maps");

/* Set by the loader (read-only once loaded): 1 keeps each head's scan and decision in
 * dlb_last for tests. At 0 the verifier drops that code, so attached programs pay nothing. */
const volatile __u8 dlb_record_last = 0;

/* Set by the loader for benchmarks and tests that run one frame many times (read-only
 * once loaded): 1 reads every data segment as the next head of its flow, without the
 * stream map. Never set by the agent: a segment is then decided however it was sent. */
const volatile __u8 dlb_replay_heads = 0;

struct dlb_scan {
	__u32 cpu;
	__u32 n;
	__u32 line_start;
	__u32 line_no;
	__u32 colon;                   /* 1 + position of the line's first ':'; 0: none */
	__u32 vstart, vend;            /* 1 + first / last non-OWS byte of the value */
	__u32 sp1, sp2, q;             /* 1 + positions on the request line; 0: none */
	__u32 head_end;
	__u32 host_off, host_len;
	__u32 id_off, id_len;
	__u32 id_name_len;
	__u32 max_id;
	__u32 max_lines;
	__u32 phase;                   /* enum dlb_phase: where the next call resumes */
	__u32 pos;                     /* ... and from which byte */
	__u32 payload_off;             /* the payload's offset in the frame */
	__u32 tmp, tmp2;               /* see launder() */
	__u8 have_host, have_id, result;
	__u8 have_cl;                  /* a Content-Length line: its value in cl */
	__u8 have_te;                  /* a Transfer-Encoding line (any value) */
	__u8 http10;                   /* the request line's version is HTTP/1.0 */
	__u8 pad[2];
	__u32 cl;
	__u32 hv_which, hv_from, hv_end;   /* a value line for dlb_header_value; which 0: none */
	__u32 held;                    /* head bytes from earlier packets already in sc->head */
};

struct dlb_view {
	__u32 l3_off;
	__u32 l4_off;
	__u32 payload_off;
	__u32 payload_len;
	__u32 seq;
	__u32 ack;
	__u16 sport;
	__u16 dport;
	__u8 ipv;
	__u8 flags;
	__u8 src[16];
	__u8 dst[16];
};

struct dlb_emit {
	struct dlb_view v;
	__u32 to_client;
	__u32 seq;
	__u32 ack;
	__u32 flags;
	__u32 payload_len;
	__u32 pad;
};

struct dlb_decision {
	__u32 allowed;
	__u64 retry_ns;
	__s64 remaining;
};

/* The tries after a failed swap, one per bpf_loop call: the operation and the user's key
 * are in the CPU's scratch (the callback looks the user up again by the key). */
struct dlb_tat_op {
	__u64 cap, t_ns, local_t_ns, cost, now;
	struct dlb_decision d;
	__u32 decide;                  /* 1: gcra_try(), 0: charge_try() */
	__u32 done;
};

/* The request's parts the rules match, in the CPU's scratch (the program's stack is
 * full). */
struct dlb_match {
	__u32 cpu;
	__u32 method_off, method_len;
	__u32 path_off, path_len;
	__u32 host_off, host_len;      /* port removed */
	__u32 count;
	__u32 found;
};

/* Per-CPU scratch: the head copied out of the packet, the user key, and the segment
 * being built. Indexed by CPU in .bss so that bpf_loop callbacks reach it without a
 * map lookup per byte. */
struct dlb_scratch {
	/* part_len, pad and head are laid out as struct dlb_xdp_partial: a head held until
	 * a later packet is stored from here in one map update */
	__u32 part_len;
	__u32 part_pad;
	__u8 head[DLB_XDP_SCAN_BYTES];
	__u8 payload[2 * DLB_OUT_PAYLOAD];  /* masks with 2 * DLB_OUT_PAYLOAD - 1 stay inside */
	__u8 hdr[64];                  /* IP header (20 or 40) then TCP header (20) */
	__u8 l2[24];                   /* Ethernet header and tags of the frame being rewritten */
	struct dlb_emit emit;          /* arguments of dlb_emit_segment */
	__u64 id_name[4];              /* the config's, as words for the scan loop */
	__u64 id_fold[4];
	__u64 id_mask[4];
	/* Always 0, but unknown to the verifier: loop-carried counters start from it so
	 * that the bpf_loop callback's states converge instead of being explored once per
	 * constant value. */
	__u32 opaque_zero;
	__u32 pad;
	/* The scan's state lives here, not on the stack: the verifier tracks no values in
	 * map memory, so the bpf_loop callback is checked once instead of once per
	 * combination of known field values. */
	struct dlb_scan scan;
	struct dlb_xdp_user_key key;
	struct dlb_tat_op tat_op;     /* a bucket's tries after a failed swap */
	struct dlb_match match;       /* the rule match's arguments and result */
	struct dlb_xdp_flow_key fk;   /* the segment's flow */
	struct dlb_xdp_stream replay; /* the stream of dlb_replay_heads */
	__u32 head_off;               /* the head's offset in the payload */
	__u32 path_off, path_len;     /* the path dlb_path_normal checks */
	struct dlb_path_check path_check;
	__u32 stream_next;            /* the stream after the head passes: next byte */
	__u32 stream_body;            /* ... and body bytes still to come */
	__u32 pad2;
};
static struct dlb_scratch dlb_scratch[DLB_MAX_CPUS];
_Static_assert(__builtin_offsetof(struct dlb_scratch, head) - __builtin_offsetof(struct dlb_scratch, part_len) ==
		       __builtin_offsetof(struct dlb_xdp_partial, head),
	       "the scratch's held head is a struct dlb_xdp_partial");

static __always_inline void count(struct dlb_xdp_counters *c, int idx)
{
	if (c && idx >= 0 && idx < DLB_XDP_COUNTER_COUNT)
		c->c[idx]++;
}

/* ---- L2-L4 ---------------------------------------------------------------------- */


enum dlb_parse {
	DLB_P_TCP, DLB_P_NOT_IP, DLB_P_NOT_TCP, DLB_P_FRAGMENT, DLB_P_MALFORMED,
};

static __always_inline int parse_frame(struct xdp_md *ctx, const struct dlb_xdp_config *cfg,
				       struct dlb_view *v)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 proto;
	__u8 l4proto;
	__u32 ip_end;

	if ((void *)(eth + 1) > end)
		return DLB_P_MALFORMED;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
			__u16 *tag = data + off;
			if ((void *)(tag + 2) > end)
				return DLB_P_MALFORMED;
			proto = tag[1];
			off += 4;
		}
	}
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		return DLB_P_MALFORMED;  /* more than two tags */
	v->l3_off = off;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;
		__u32 ihl, tot;
		if ((void *)(ip + 1) > end)
			return DLB_P_MALFORMED;
		if (ip->version != 4)
			return DLB_P_MALFORMED;
		ihl = ip->ihl * 4;
		if (ihl < 20 || data + off + ihl > end)
			return DLB_P_MALFORMED;
		tot = bpf_ntohs(ip->tot_len);
		if (tot < ihl || data + off + tot > end)
			return DLB_P_MALFORMED;
		if (ip->frag_off & bpf_htons(0x3fff))
			return DLB_P_FRAGMENT;
		v->ipv = 4;
		__builtin_memcpy(v->src, &ip->saddr, 4);
		__builtin_memcpy(v->dst, &ip->daddr, 4);
		l4proto = ip->protocol;
		ip_end = off + tot;
		off += ihl;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		__u8 next;
		if ((void *)(ip6 + 1) > end)
			return DLB_P_MALFORMED;
		if (ip6->version != 6)
			return DLB_P_MALFORMED;
		ip_end = off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		if (data + ip_end > end)
			return DLB_P_MALFORMED;
		v->ipv = 6;
		__builtin_memcpy(v->src, &ip6->saddr, 16);
		__builtin_memcpy(v->dst, &ip6->daddr, 16);
		next = ip6->nexthdr;
		off += sizeof(*ip6);
#pragma unroll
		for (int i = 0; i < 8; i++) {
			__u8 *eh;
			if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING &&
			    next != IPPROTO_DSTOPTS && next != IPPROTO_AH && next != IPPROTO_FRAGMENT)
				break;
			if (i >= cfg->max_ipv6_ext)
				return DLB_P_MALFORMED;
			eh = data + off;
			if ((void *)(eh + 2) > end)
				return DLB_P_MALFORMED;
			if (next == IPPROTO_FRAGMENT)
				return DLB_P_FRAGMENT;
			/* AH counts 4-byte units minus 2; the others 8-byte units minus 1 */
			off += next == IPPROTO_AH ? ((__u32)eh[1] + 2) * 4 : ((__u32)eh[1] + 1) * 8;
			next = eh[0];
		}
		if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS ||
		    next == IPPROTO_AH || next == IPPROTO_FRAGMENT)
			return DLB_P_MALFORMED;  /* chain too long */
		if (off > ip_end)
			return DLB_P_MALFORMED;
		l4proto = next;
	} else {
		return DLB_P_NOT_IP;
	}
	if (l4proto != IPPROTO_TCP)
		return DLB_P_NOT_TCP;
	v->l4_off = off;
	{
		struct tcphdr *tcp = data + off;
		__u32 doff;
		if ((void *)(tcp + 1) > end || off + sizeof(*tcp) > ip_end)
			return DLB_P_MALFORMED;
		doff = tcp->doff * 4;
		if (doff < 20 || off + doff > ip_end)
			return DLB_P_MALFORMED;
		v->sport = bpf_ntohs(tcp->source);
		v->dport = bpf_ntohs(tcp->dest);
		v->seq = bpf_ntohl(tcp->seq);
		v->ack = bpf_ntohl(tcp->ack_seq);
		v->flags = ((__u8 *)tcp)[13];
		v->payload_off = off + doff;
		v->payload_len = ip_end - (off + doff);
	}
	return DLB_P_TCP;
}

/* ---- HTTP request head ---------------------------------------------------------- */

enum dlb_head {
	DLB_H_MORE = DLB_XDP_SCAN_MORE, DLB_H_OK = DLB_XDP_SCAN_OK,
	DLB_H_NOT_HTTP = DLB_XDP_SCAN_NOT_HTTP, DLB_H_MALFORMED = DLB_XDP_SCAN_MALFORMED,
	DLB_H_SLOW = DLB_XDP_SCAN_SLOW,
	DLB_H_ERROR = 255,             /* the payload could not be read: passed, not counted */
};

/* Where the scan resumes: the request line's method, target and version, then a header
 * line's name and its value. */
enum dlb_phase {
	DLB_PH_METHOD = 0, DLB_PH_TARGET, DLB_PH_VERSION, DLB_PH_NAME, DLB_PH_VALUE,
};

/* Bytes of the head copied before the method is checked: a payload that does not start a
 * request line costs no more than this. Covers the longest method, its space and the
 * word read at byte 24. */
#define DLB_METHOD_BYTES 32
/* Words (or single-byte steps) one call of the scan's loop body takes in one search
 * before it saves its position and returns to bpf_loop, which calls it again. */
#define DLB_SCAN_STEPS 32

#define DLB_TCP_FIN 0x01
#define DLB_TCP_SYN 0x02
#define DLB_TCP_RST 0x04
#define DLB_TCP_ACK 0x10

#define DLB_ONES 0x0101010101010101ULL
#define DLB_FOLD 0x2020202020202020ULL     /* letters to lower case (names compared) */
#define DLB_HIGHS 0x8080808080808080ULL
#define DLB_LOW7 0x7f7f7f7f7f7f7f7fULL
#define DLB_HTTP11 0x312e312f50545448ULL   /* "HTTP/1.1" as a little-endian word */

static __always_inline __u8 head_byte(__u32 cpu, __u32 i)
{
	return dlb_scratch[cpu & (DLB_MAX_CPUS - 1)].head[i & DLB_SCAN_MASK];
}

/* Eight head bytes from p (little-endian: byte p in the low bits). The head buffer is
 * followed by more scratch, so the word never leaves the map value; bytes at or past
 * the scan's n are stale and every search ignores what it finds there. */
static __always_inline __u64 head_word(const struct dlb_scratch *sc, __u32 p)
{
	return *(const __u64 *)(sc->head + (p & DLB_SCAN_MASK));
}

/* Byte flags are 0x80 in each flagged byte. The index of the lowest flagged byte of
 * m != 0: its lowest bit is 1 << (8k + 7); shifted to 1 << 8k, the multiplication
 * moves byte 7 - k of the constant (k) into the top byte. */
static __always_inline __u32 first_flag(__u64 m)
{
	return (__u32)((((m & -m) >> 7) * 0x0001020304050607ULL) >> 56);
}

/* Flags of the bytes equal to c: exact at the lowest flagged byte (a borrow may flag
 * bytes above it), which is all the searches use. */
static __always_inline __u64 eq_first(__u64 w, __u64 c)
{
	__u64 y = w ^ (c * DLB_ONES);
	return (y - DLB_ONES) & ~y & DLB_HIGHS;
}

/* Flags of the bytes outside [A-Za-z0-9-] (and CR, when cr_ok), exact in every byte:
 * each range test adds a constant to 7-bit bytes, which never carries into the next
 * byte. Header names and methods are mostly these bytes; a flagged byte is then looked
 * at alone (':', LF, another tchar, or a malformed byte). */
static __always_inline __u64 name_stops(__u64 w, int cr_ok)
{
	__u64 x7 = w & DLB_LOW7;
	__u64 f = x7 | (0x20 * DLB_ONES);            /* letters folded to lower case */
	__u64 alpha = (f + 0x1f * DLB_ONES) & ~(f + 0x05 * DLB_ONES);     /* 0x61..0x7a */
	__u64 digit = (x7 + 0x50 * DLB_ONES) & ~(x7 + 0x46 * DLB_ONES);   /* 0x30..0x39 */
	/* '-' (0x2d); folded, CR (0x0d) is 0x2d too */
	__u64 dash = ~(((cr_ok ? f : x7) ^ (0x2d * DLB_ONES)) + DLB_LOW7);
	__u64 good = (alpha | digit | dash) & ~w & DLB_HIGHS;
	return good ^ DLB_HIGHS;
}

/* Flags of the bytes not allowed in a request target (<= 0x20 or DEL): exact at the
 * lowest. */
static __always_inline __u64 target_stops(__u64 w)
{
	__u64 ctl = ~((w & DLB_LOW7) + 0x5f * DLB_ONES) & ~w & DLB_HIGHS;   /* < 0x21 */
	return ctl | eq_first(w, 0x7f);
}

/* Flags of the bytes other than SP, HT and CR, exact in every byte. */
static __always_inline __u64 value_bytes(__u64 w)
{
	__u64 sp = w ^ (0x20 * DLB_ONES), ht = w ^ (0x09 * DLB_ONES), cr = w ^ (0x0d * DLB_ONES);
	__u64 nz_sp = ((sp & DLB_LOW7) + DLB_LOW7) | sp;
	__u64 nz_ht = ((ht & DLB_LOW7) + DLB_LOW7) | ht;
	__u64 nz_cr = ((cr & DLB_LOW7) + DLB_LOW7) | cr;
	return nz_sp & nz_ht & nz_cr & DLB_HIGHS;
}

static __always_inline int is_tchar(__u8 c)
{
	/* RFC 9110 tchar as two 64-bit maps: ! # $ % & ' * + - . 0-9, then A-Z ^ _ ` a-z | ~ */
	if (c < 64)
		return (0x03ff6cfa00000000ULL >> c) & 1;
	if (c < 128)
		return (0x57ffffffc7fffffeULL >> (c - 64)) & 1;
	return 0;
}

/* A value computed in a loop, passed through the scratch memory: the verifier knows
 * nothing about what it reads back, so the code after the loop is checked once rather
 * than once per iteration the loop may have left at. */
static __always_inline __u32 launder(struct dlb_scan *s, __u32 v)
{
	s->tmp = v;
	asm volatile("" ::: "memory");
	return *(volatile __u32 *)&s->tmp;
}

/* A field of the scan state as the verifier first saw it (an unknown value), not as the
 * comparisons of a loop's iteration narrowed it; see launder(). */
#define DLB_RELOAD(field) ({ asm volatile("" ::: "memory"); *(volatile __u32 *)&(field); })

static __always_inline long scan_done(struct dlb_scan *s, __u8 result)
{
	s->result = result;
	return 1;
}

static __always_inline long scan_suspend(struct dlb_scan *s, __u32 phase, __u32 p)
{
	s->phase = phase;
	s->pos = p;
	return 0;
}

/* The request line from byte 0: the method, a token of at most DLB_XDP_MAX_METHOD
 * bytes, then SP. Sets sp1 and the phase; otherwise the result. Reads only the first
 * DLB_METHOD_BYTES bytes. */
static __always_inline long scan_method(struct dlb_scratch *sc, struct dlb_scan *s, __u32 n)
{
	__u32 p = 0;

#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_XDP_MAX_METHOD + 2; k++) {   /* each step takes >= 1 byte */
		__u64 stops;
		__u32 j;
		__u8 c;

		if (p >= n)
			return scan_done(s, DLB_H_MORE);
		if (p > DLB_XDP_MAX_METHOD)
			break;
		/* the first flagged byte, else the word's last byte (a token byte) */
		stops = name_stops(head_word(sc, p), 0);
		j = p + first_flag(stops | (0x80ULL << 56));
		if (j > DLB_XDP_MAX_METHOD) {
			/* a token byte at DLB_XDP_MAX_METHOD: too long */
			return scan_done(s, DLB_XDP_MAX_METHOD >= n ? DLB_H_MORE : DLB_H_NOT_HTTP);
		}
		if (j >= n)
			return scan_done(s, DLB_H_MORE);
		c = sc->head[j & DLB_SCAN_MASK];
		if (c == ' ' && j > 0) {
			s->sp1 = j + 1;
			return scan_suspend(s, DLB_PH_TARGET, j + 1);
		}
		if (!is_tchar(c) || j >= DLB_XDP_MAX_METHOD)
			return scan_done(s, DLB_H_NOT_HTTP);
		p = j + 1;
	}
	return scan_done(s, DLB_H_NOT_HTTP);
}

/* The target up to SP: no control bytes, no DEL; the first '?' noted. */
static __always_inline long scan_target(struct dlb_scratch *sc, struct dlb_scan *s, __u32 p,
					__u32 n)
{
#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_SCAN_STEPS; k++) {
		__u64 w, stops, qs;
		__u32 j;

		if (p >= n)
			return scan_done(s, DLB_H_MORE);
		w = head_word(sc, p);
		stops = target_stops(w);
		qs = eq_first(w, '?');
		j = stops ? p + first_flag(stops) : p + 8;
		if (qs && !s->q) {
			__u32 qj = p + first_flag(qs);
			if (qj < j)
				s->q = qj + 1;
		}
		if (!stops) {
			p = j;
			continue;
		}
		if (j >= n)
			return scan_done(s, DLB_H_MORE);
		if (sc->head[j & DLB_SCAN_MASK] != ' ')
			return scan_done(s, DLB_H_MALFORMED);
		s->sp2 = j + 1;
		return scan_suspend(s, DLB_PH_VERSION, j + 1);
	}
	return scan_suspend(s, DLB_PH_TARGET, p);
}

/* The first LF at or after p: its position, n when there is none before n, or n + 1
 * when the step budget ran out at *resume. */
static __always_inline __u32 find_lf(const struct dlb_scratch *sc, __u32 p, __u32 n,
				     __u32 *resume)
{
#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_SCAN_STEPS; k++) {
		__u64 lfs;

		if (p >= n)
			return n;
		lfs = eq_first(head_word(sc, p), '\n');
		if (lfs) {
			__u32 e = p + first_flag(lfs);
			return e < n ? e : n;
		}
		p += 8;
	}
	*resume = p;
	return n + 1;
}

/* The version up to LF: exactly HTTP/1.1 or HTTP/1.0, optionally followed by CR. */
static __always_inline long scan_version(struct dlb_scratch *sc, struct dlb_scan *s, __u32 p,
					 __u32 n)
{
	__u32 resume = 0, e, le, vo;

	e = launder(s, find_lf(sc, p, n, &resume));
	if (e == n + 1)
		return scan_suspend(s, DLB_PH_VERSION, resume);
	n = DLB_RELOAD(s->n);
	if (e >= n || e > DLB_XDP_SCAN_BYTES)
		return scan_done(s, DLB_H_MORE);
	le = e;
	if (le > 0 && sc->head[(le - 1) & DLB_SCAN_MASK] == '\r')
		le--;
	vo = s->sp2;
	if (le != vo + 8 || vo == s->sp1 + 1 || (head_word(sc, vo) | (1ULL << 56)) != DLB_HTTP11)
		return scan_done(s, DLB_H_MALFORMED);
	s->http10 = sc->head[(vo + 7) & DLB_SCAN_MASK] == '0';
	s->line_no = 1;
	s->line_start = e + 1;
	return scan_suspend(s, DLB_PH_NAME, e + 1);
}

/* A Content-Length value [vs, ve): 1 to DLB_MAX_CL_DIGITS digits, nothing else (a list,
 * a sign or a space inside is malformed, as in the engine). 0 when malformed. */
#define DLB_MAX_CL_DIGITS 9
static __always_inline int parse_cl(const struct dlb_scratch *sc, __u32 vs, __u32 ve, __u32 *out)
{
	__u32 v = 0;

	if (ve <= vs || ve - vs > DLB_MAX_CL_DIGITS)
		return 0;
#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_MAX_CL_DIGITS; k++) {
		__u8 c;
		if (vs + k >= ve)
			break;
		c = sc->head[(vs + k) & DLB_SCAN_MASK];
		if (c < '0' || c > '9')
			return 0;
		v = v * 10 + (c - '0');
	}
	*out = v;
	return 1;
}

/* The value of a Host or identity line, [from, e): OWS and CR trimmed at both ends. */
static __always_inline void trim_value(const struct dlb_scratch *sc, struct dlb_scan *s,
				       __u32 from, __u32 e)
{
	__u32 p = from, vs = e, q;

	s->tmp2 = e;

#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_XDP_SCAN_BYTES / 8 + 1; k++) {
		__u64 m;
		if (p >= e)
			break;
		m = value_bytes(head_word(sc, p));
		if (m) {
			__u32 j = p + first_flag(m);
			if (j < e)
				vs = j;
			break;
		}
		p += 8;
	}
	vs = launder(s, vs);
	s->vstart = vs;
	s->vend = vs;
	e = DLB_RELOAD(s->tmp2);
	if (vs >= e || e > DLB_XDP_SCAN_BYTES)
		return;
	/* The last value byte: vs is one, so the search ends there at the latest. Words
	 * end at q, from e down. */
	q = e;
#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_XDP_SCAN_BYTES / 8 + 1; k++) {
		__u64 m;
		__u32 hi = 0;
		if (q <= vs)
			break;
		m = value_bytes(head_word(sc, q - 8));
		if (m) {
			/* the highest flagged byte */
			if (m >> 32) {
				hi += 4;
				m >>= 32;
			}
			if (m >> 16) {
				hi += 2;
				m >>= 16;
			}
			if (m >> 8)
				hi += 1;
			s->vend = q - 8 + hi + 1;
			return;
		}
		q -= 8;
	}
}

/* The lines whose values the program keeps (dlb_header_value's `which`). */
#define DLB_HV_HOST 1
#define DLB_HV_ID 2
#define DLB_HV_CL 4

/* The value [hv_from, hv_end) of the Host, identity or Content-Length line the last
 * step found (hv_which), trimmed and kept in the scan; 1 once the head is found
 * malformed (s->result set). A global function, for
 * the reason given at dlb_scan_one: its branches are checked once, not once per path
 * through the line's scan. */
__noinline long dlb_header_value(__u32 cpu)
{
	struct dlb_scratch *sc = &dlb_scratch[cpu & (DLB_MAX_CPUS - 1)];
	struct dlb_scan *s = &sc->scan;
	__u32 which = s->hv_which, from = s->hv_from, e = s->hv_end;
	__u32 vs, ve;

	s->hv_which = 0;
	if (!which)
		return 0;
	if (e > DLB_XDP_SCAN_BYTES || from > e)
		return scan_done(s, DLB_H_MALFORMED);
	trim_value(sc, s, from, e);
	vs = s->vstart;
	ve = s->vend;
	if (vs > ve || ve > e)
		return scan_done(s, DLB_H_MALFORMED);
	if (which & DLB_HV_HOST) {
		if (s->have_host)
			return scan_done(s, DLB_H_MALFORMED);   /* duplicate Host */
		s->have_host = 1;
		s->host_off = vs;
		s->host_len = ve - vs;
	}
	if (which & DLB_HV_CL) {
		__u32 cl = 0;
		if (s->have_cl || !parse_cl(sc, vs, ve, &cl))
			return scan_done(s, DLB_H_MALFORMED);   /* duplicate or not a number */
		s->have_cl = 1;
		s->cl = cl;
	}
	if (which & DLB_HV_ID) {
		if (s->have_id)
			return scan_done(s, DLB_H_MALFORMED);   /* duplicate identity */
		if (ve - vs > s->max_id || ve - vs > DLB_XDP_MAX_ID)
			return scan_done(s, DLB_H_MALFORMED);   /* identity too long */
		/* a control byte or DEL in the value: the same ID to a server that strips
		 * them, another bucket here (docs/identity.md) */
#pragma clang loop unroll(disable)
		for (int k = 0; k < DLB_XDP_MAX_ID; k++) {
			__u8 ch;
			if (vs + k >= ve)
				break;
			ch = sc->head[(vs + k) & DLB_SCAN_MASK];
			if (ch < 0x20 || ch == 0x7f)
				return scan_done(s, DLB_H_MALFORMED);
		}
		s->have_id = 1;
		s->id_off = vs;
		s->id_len = ve - vs;
	}
	return 0;
}

/* A header line from its start: the name (tchar and CR, at least one byte) up to ':',
 * then the value up to LF; or the empty line that ends the head. */
static __always_inline long scan_header(struct dlb_scratch *sc, struct dlb_scan *s,
					__u32 phase, __u32 p, __u32 n)
{
	__u32 ls = s->line_start;
	__u32 resume = 0, colon, e, name_len;
	int host_m, id_m, cl_m, te_m;

	if (ls > p || ls >= DLB_XDP_SCAN_BYTES)
		return scan_done(s, DLB_H_MALFORMED);
	if (phase == DLB_PH_NAME) {
		__u32 stop = n + 1;
#pragma clang loop unroll(disable)
		for (int k = 0; k < DLB_SCAN_STEPS; k++) {   /* each step takes >= 1 byte */
			__u64 stops;
			__u32 j;
			__u8 c;

			if (p >= n)
				return scan_done(s, DLB_H_MORE);
			/* The first flagged byte, else the word's last byte (a name byte then):
			 * one way round the loop, so the verifier's states do not fork per
			 * iteration. */
			stops = name_stops(head_word(sc, p), 1);
			j = p + first_flag(stops | (0x80ULL << 56));
			if (j >= n)
				return scan_done(s, DLB_H_MORE);
			c = sc->head[j & DLB_SCAN_MASK];
			if (c == ':' || c == '\n') {
				stop = j;
				break;
			}
			/* obs-fold (a line starting with OWS), a bad name byte */
			if (c != '\r' && !is_tchar(c))
				return scan_done(s, DLB_H_MALFORMED);
			p = j + 1;
		}
		if (stop == n + 1)
			return scan_suspend(s, DLB_PH_NAME, p);
		stop = launder(s, stop);
		n = DLB_RELOAD(s->n);
		ls = DLB_RELOAD(s->line_start);
		if (n > DLB_XDP_SCAN_BYTES || ls >= DLB_XDP_SCAN_BYTES)
			return scan_done(s, DLB_H_MALFORMED);
		if (stop >= n)
			return scan_done(s, DLB_H_MALFORMED);
		if (sc->head[stop & DLB_SCAN_MASK] == '\n') {
			if (stop == ls || (stop == ls + 1 && sc->head[ls & DLB_SCAN_MASK] == '\r')) {
				s->head_end = stop + 1;      /* the empty line */
				return scan_done(s, DLB_H_OK);
			}
			return scan_done(s, DLB_H_MALFORMED);   /* no ':' */
		}
		if (stop == ls)
			return scan_done(s, DLB_H_MALFORMED);   /* empty name */
		s->colon = stop + 1;
		p = stop + 1;
	}
	colon = s->colon;
	if (colon <= ls || colon > p)
		return scan_done(s, DLB_H_MALFORMED);
	e = launder(s, find_lf(sc, p, n, &resume));
	if (e == n + 1)
		return scan_suspend(s, DLB_PH_VALUE, resume);
	n = DLB_RELOAD(s->n);
	ls = DLB_RELOAD(s->line_start);
	colon = DLB_RELOAD(s->colon);
	if (e >= n || e >= DLB_XDP_SCAN_BYTES || n > DLB_XDP_SCAN_BYTES ||
	    colon <= ls || colon > e)
		return scan_done(s, e >= n ? DLB_H_MORE : DLB_H_MALFORMED);
	colon--;

	name_len = colon - ls;
	{
		/* Names compared a word at a time, folded to lower case where the name has
		 * letters; the head buffer is followed by more scratch, so reading 32 bytes
		 * from any line start stays inside the map value. */
		const __u8 *h = sc->head + (ls & DLB_SCAN_MASK);
		__u64 w[4];
		__builtin_memcpy(w, h, 32);
		host_m = name_len == 4 &&
			 ((w[0] | 0x20202020ULL) & 0xffffffffULL) == 0x74736f68ULL;  /* "host" */
		/* "content-length" and "transfer-encoding", the body's framing: letters
		 * folded, the '-' compared as it is */
		cl_m = name_len == 14 && (w[0] | 0x0020202020202020ULL) == 0x2d746e65746e6f63ULL &&
		       ((w[1] | DLB_FOLD) & 0xffffffffffffULL) == 0x6874676e656cULL;
		te_m = name_len == 17 && (w[0] | DLB_FOLD) == 0x726566736e617274ULL &&
		       (w[1] | 0x2020202020202000ULL) == 0x6e69646f636e652dULL &&
		       ((w[2] | DLB_FOLD) & 0xffULL) == 0x67ULL;
		id_m = name_len == s->id_name_len &&
		       ((w[0] | sc->id_fold[0]) & sc->id_mask[0]) == sc->id_name[0] &&
		       ((w[1] | sc->id_fold[1]) & sc->id_mask[1]) == sc->id_name[1] &&
		       ((w[2] | sc->id_fold[2]) & sc->id_mask[2]) == sc->id_name[2] &&
		       ((w[3] | sc->id_fold[3]) & sc->id_mask[3]) == sc->id_name[3];
	}
	if (te_m)
		s->have_te = 1;
	/* The value is kept by dlb_header_value, called by scan_step right after this step
	 * (not from here: one call frame fewer on the verifier's stack budget). */
	s->hv_which = (host_m ? DLB_HV_HOST : 0) | (id_m ? DLB_HV_ID : 0) | (cl_m ? DLB_HV_CL : 0);
	s->hv_from = colon + 1;
	s->hv_end = e;
	s->line_no++;
	if (s->line_no > s->max_lines)
		return scan_done(s, DLB_H_MALFORMED);   /* too many header lines */
	s->line_start = e + 1;
	return scan_suspend(s, DLB_PH_NAME, e + 1);
}

/* One step: the rest of the request line, or one header line, from where the last step
 * stopped. Returns 1 once s->result is set (DLB_H_MORE: the head does not end before
 * n).
 *
 * A global function: the verifier checks it once, on its own, with an unknown CPU
 * index, instead of inside the bpf_loop callback, whose body recent kernels verify
 * again and again until its states converge (with every phase's branches multiplied
 * in each round). This keeps the program's processed instructions a fraction of the
 * verifier's limit on every kernel (tests/xdp: VerifierHeadroom). */
__noinline long dlb_scan_one(__u32 cpu)
{
	struct dlb_scratch *sc = &dlb_scratch[cpu & (DLB_MAX_CPUS - 1)];
	struct dlb_scan *s = &sc->scan;
	__u32 n = s->n, p = s->pos, phase = s->phase;

	if (n > DLB_XDP_SCAN_BYTES || p >= DLB_XDP_SCAN_BYTES)
		return scan_done(s, DLB_H_MORE);
	if (phase == DLB_PH_TARGET)
		return scan_target(sc, s, p, n);
	if (phase == DLB_PH_VERSION)
		return scan_version(sc, s, p, n);
	if (phase == DLB_PH_NAME || phase == DLB_PH_VALUE)
		return scan_header(sc, s, phase, p, n);
	return scan_done(s, DLB_H_MALFORMED);
}

/* Steps per bpf_loop call: the call's own cost is shared by four lines. The CPU is read
 * again for each step, so that the compiler does not keep the scratch's addresses
 * across them (its stack would outgrow what the verifier allows). */
#define DLB_SCAN_STEPS_PER_CALL 4

static long scan_step(__u32 idx, __u32 *cpu_arg)
{
#pragma unroll
	for (int i = 0; i < DLB_SCAN_STEPS_PER_CALL; i++) {
		__u32 cpu = *(volatile __u32 *)cpu_arg;

		if (dlb_scan_one(cpu))
			return 1;
		/* most lines are neither Host, identity nor Content-Length: no call */
		if (dlb_scratch[cpu & (DLB_MAX_CPUS - 1)].scan.hv_which && dlb_header_value(cpu))
			return 1;
	}
	return 0;
}

/* Payload bytes [from, to) into sc->head at the same offsets, read from the frame's
 * linear part by 8-byte loads: words from `from` (a multiple of 8) while they end by
 * `to`, then the word that ends at `to` (it may overlap the one before; it starts at 0 at
 * the earliest, since to >= 8). No helper call: bpf_xdp_load_bytes costs several times
 * what the loads of a short head do. 0 when the bytes are not all in the linear part
 * (the caller then copies with bpf_xdp_load_bytes, which also reads fragments), or
 * when the payload starts 16 KiB or more into the frame (the verifier bounds packet
 * offsets). */
#define DLB_COPY_DIRECT(ctx, sc, off, from, to, words)                                   \
	({                                                                               \
		const __u8 *p_ = (const __u8 *)(long)(ctx)->data + ((off) & 0x3fff);     \
		void *end_ = (void *)(long)(ctx)->data_end;                              \
		int ok_ = (to) >= 8 && (off) < 0x4000;                                   \
		_Pragma("unroll")                                                        \
		for (int k_ = (from) / 8; ok_ && k_ < (from) / 8 + (words); k_++) {      \
			if (8 * k_ + 8 > (to))                                           \
				break;                                                   \
			if ((void *)(p_ + 8 * k_ + 8) > end_) {                          \
				ok_ = 0;                                                 \
				break;                                                   \
			}                                                                \
			*(__u64 *)((sc)->head + 8 * k_) = *(const __u64 *)(p_ + 8 * k_);  \
		}                                                                        \
		if (ok_ && ((to) & 7)) {                                                 \
			__u32 last_ = ((to) - 8) & DLB_SCAN_MASK;                        \
			if ((void *)(p_ + last_ + 8) > end_)                             \
				ok_ = 0;                                                 \
			else                                                             \
				*(__u64 *)((sc)->head + last_) = *(const __u64 *)(p_ + last_); \
		}                                                                        \
		ok_;                                                                     \
	})

/* Payload bytes [0, to), to >= DLB_COPY_BLOCK, into sc->head by blocks of
 * DLB_COPY_BLOCK bytes read from the frame's linear part, the last block ending at `to`
 * (it may overlap the one before): one bounds check per block, the words within it
 * unconditional. 0 as DLB_COPY_DIRECT. */
#define DLB_COPY_BLOCK 128

static __always_inline int copy_blocks(struct xdp_md *ctx, struct dlb_scratch *sc, __u32 off,
				       __u32 to)
{
	const __u8 *p = (const __u8 *)(long)ctx->data + (off & 0x3fff);
	void *end = (void *)(long)ctx->data_end;
	__u32 start = 0;

	if (off >= 0x4000 || to < DLB_COPY_BLOCK || to > DLB_XDP_SCAN_BYTES)
		return 0;
#pragma clang loop unroll(disable)
	for (int b = 0; b < DLB_XDP_SCAN_BYTES / DLB_COPY_BLOCK; b++) {
		const __u8 *q;
		__u8 *d;

		if (start + DLB_COPY_BLOCK > to)
			start = to - DLB_COPY_BLOCK;
		start &= DLB_XDP_SCAN_BYTES - 1;
		q = p + start;
		if ((void *)(q + DLB_COPY_BLOCK) > end)
			return 0;
		d = sc->head + start;
#pragma unroll
		for (int k = 0; k < DLB_COPY_BLOCK / 8; k++)
			((__u64 *)d)[k] = ((const __u64 *)q)[k];
		start += DLB_COPY_BLOCK;
		if (start >= to)
			return 1;
	}
	return 1;
}

/* The head at the payload's start, into sc->scan: the method from the first
 * DLB_METHOD_BYTES bytes, then the rest copied (by loads; bpf_xdp_load_bytes where the
 * frame's linear part does not hold it) and scanned line by line. A global function:
 * verified once, apart from the program. */
__noinline int dlb_scan_head(struct xdp_md *ctx, struct dlb_scratch *sc)
{
	struct dlb_scan *s;
	__u32 cpu, n, off, first;

	if (!ctx || !sc)
		return DLB_H_ERROR;
	s = &sc->scan;
	cpu = s->cpu;
	n = s->n;
	off = s->payload_off;
	if (n < 1 || n > DLB_XDP_SCAN_BYTES || off > 0xffff)
		return DLB_H_ERROR;
	if (s->held) {
		/* a held head: this packet's bytes go after it */
		__u32 held = s->held, cnt;
		if (held >= n || held >= DLB_XDP_SCAN_BYTES)
			return DLB_H_ERROR;
		cnt = (n - held) & (DLB_XDP_SCAN_BYTES - 1);
		if (cnt == 0 || bpf_xdp_load_bytes(ctx, off, sc->head + (held & (DLB_XDP_SCAN_BYTES - 1)), cnt))
			return DLB_H_ERROR;
		if (scan_method(sc, s, n))
			return s->result;
		bpf_loop(DLB_XDP_SCAN_BYTES / DLB_SCAN_STEPS_PER_CALL, scan_step, &cpu, 0);
		return s->result;
	}
	first = n < DLB_METHOD_BYTES ? n : DLB_METHOD_BYTES;
	if (!DLB_COPY_DIRECT(ctx, sc, off, 0, first, DLB_METHOD_BYTES / 8) &&
	    bpf_xdp_load_bytes(ctx, off, sc->head, first))
		return DLB_H_ERROR;
	if (scan_method(sc, s, n))
		return s->result;
	n = DLB_RELOAD(s->n);
	off = DLB_RELOAD(s->payload_off);
	if (n > DLB_XDP_SCAN_BYTES || off > 0xffff)
		return DLB_H_ERROR;
	if (n > DLB_METHOD_BYTES) {
		__u32 rest = (n - DLB_METHOD_BYTES) & (DLB_XDP_SCAN_BYTES - 1);
		if (n >= DLB_COPY_BLOCK ? !copy_blocks(ctx, sc, off, n) :
		    !DLB_COPY_DIRECT(ctx, sc, off, DLB_METHOD_BYTES, n,
				     (DLB_COPY_BLOCK - DLB_METHOD_BYTES) / 8)) {
			if (rest == 0 || bpf_xdp_load_bytes(ctx, off + DLB_METHOD_BYTES,
							    sc->head + DLB_METHOD_BYTES, rest))
				return DLB_H_ERROR;
		}
	}
	bpf_loop(DLB_XDP_SCAN_BYTES / DLB_SCAN_STEPS_PER_CALL, scan_step, &cpu, 0);
	return s->result;
}

/* 1 when the path [off, off + len) of the head in the CPU's scratch is its own normal
 * form (lib/dlb/path.h, docs/paths.md): rules match it as it is. The program does not
 * rewrite paths; a target the server would route under another spelling is refused.
 * Global: the byte loop is verified once, apart from the program. */
static long path_step(__u32 idx, __u32 *cpu_arg)
{
	struct dlb_scratch *sc = &dlb_scratch[*(volatile __u32 *)cpu_arg & (DLB_MAX_CPUS - 1)];

	return dlb_path_check_step(&sc->path_check, sc->head + (sc->path_off & DLB_SCAN_MASK),
				   sc->path_len, 0);
}

__noinline long dlb_path_normal(__u32 cpu, __u32 off, __u32 len)
{
	struct dlb_scratch *sc = &dlb_scratch[cpu & (DLB_MAX_CPUS - 1)];

	if (off >= DLB_XDP_SCAN_BYTES || len > DLB_XDP_SCAN_BYTES - off)
		return 0;
	sc->path_off = off;
	sc->path_len = len;
	dlb_path_check_start(&sc->path_check, sc->head + off, len);
	/* one byte (an escape: three) per call, the end as one more */
	bpf_loop(DLB_XDP_SCAN_BYTES + 1, path_step, &cpu, 0);
	return sc->path_check.result == 1;
}

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

/* A data segment [seq, seq + len) against the stream: bytes before next_seq were passed
 * (a retransmission: passed again, the server keeps its first copy); bytes at next_seq
 * are body while body_left lasts, then a head starts (DLB_ST_HEAD, next_seq moved to
 * it); a segment after a gap is passed only when all of it is body. */
static __always_inline int stream_segment(struct dlb_xdp_stream *st, __u32 seq, __u32 len,
					  __u32 *off, struct dlb_xdp_counters *c)
{
	__s32 d = (__s32)(seq - st->next_seq);
	__u32 skip, avail;

	if (d > 0) {
		if ((__u64)d + len <= st->body_left) {
			count(c, DLB_XDP_C_body_segments);
			return DLB_ST_PASS;
		}
		count(c, DLB_XDP_C_stream_out_of_order);
		return DLB_ST_DROP;
	}
	skip = (__u32)-d;
	if (skip > DLB_XDP_STREAM_BEHIND) {
		count(c, DLB_XDP_C_stream_out_of_order);
		return DLB_ST_DROP;
	}
	if (skip >= len) {
		count(c, DLB_XDP_C_stream_retransmits);
		return DLB_ST_PASS;
	}
	avail = len - skip;
	if (st->body_left >= avail) {
		st->body_left -= avail;
		st->next_seq += avail;
		count(c, DLB_XDP_C_body_segments);
		return DLB_ST_PASS;
	}
	*off = skip + st->body_left;
	st->next_seq += st->body_left;
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
	if (held == 0 || held >= DLB_XDP_SCAN_BYTES)
		return 0;
#pragma clang loop unroll(disable)
	for (int k = 0; k < DLB_XDP_SCAN_BYTES / 8; k++) {
		if (8 * k >= held)
			break;
		((__u64 *)sc->head)[k] = ((const __u64 *)pb->head)[k];
	}
	sc->part_len = held;
	return held;
}

/* A decided head passes: the stream moves past this packet, with the body bytes still
 * to come (sc->stream_next, sc->stream_body, set once the head was scanned). */
static __always_inline int stream_pass(const struct dlb_scratch *sc, struct dlb_xdp_stream *st)
{
	st->next_seq = sc->stream_next;
	st->body_left = sc->stream_body;
	if (st->flags & DLB_XDP_STREAM_PARTIAL) {
		st->flags &= ~DLB_XDP_STREAM_PARTIAL;
		bpf_map_delete_elem(&dlb_partial, &sc->fk);
	}
	return XDP_PASS;
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

/* 429 + FIN to the client (XDP_TX); the flow is remembered so that the server gets
 * its RST from the client's next segment. */
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
	off = put_number(sc, off, r->body_static_len + digits_of(retry_s));
	off = put_piece(sc, off, r, 1);
	off = put_number(sc, off, retry_s);
	off = put_piece(sc, off, r, 2);
	off = put_number(sc, off, remaining);
	off = put_piece(sc, off, r, 3);
	off = put_number(sc, off, retry_s);
	off = put_piece(sc, off, r, 4);
	off = put_number(sc, off, retry_s);
	off = put_piece(sc, off, r, 5);

	fv.server_next_seq = v->seq;
	if (emit_segment(ctx, sc, v, 1, v->ack, segment_end(v), 0x19 /* FIN PSH ACK */, off)) {
		count(c, DLB_XDP_C_reject_failed);
		return XDP_DROP;
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
	if (n > DLB_XDP_SCAN_BYTES - sc->part_len)
		n = DLB_XDP_SCAN_BYTES - sc->part_len;

	struct dlb_scan *sp = &sc->scan;
	__builtin_memset(sp, 0, sizeof(*sp));
	sp->cpu = cpu;
	sp->held = sc->part_len;
	sp->n = sc->part_len + n;
	sp->payload_off = v.payload_off + sc->head_off;
	sp->id_name_len = cfg->id_name_len;
	sp->max_id = cfg->max_identity_bytes;
	sp->max_lines = 128;
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
		if (total >= cfg->max_head_bytes || total >= DLB_XDP_SCAN_BYTES) {
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
		if (body_end < v.payload_len) {
			/* another request's bytes follow in this packet: not decided here */
			count(c, DLB_XDP_C_pipelined_refused);
			return head_policy(ctx, sc, &v, fk, cfg->on_malformed_head, c);
		}
		sc->stream_body = (__u32)(body_end - v.payload_len);
	}
	tstart = sp->sp1;                         /* 1 + SP = first target byte */
	tend = sp->q ? sp->q - 1 : sp->sp2 - 1;
	if (head_byte(cpu, tstart) != '/' && head_byte(cpu, tstart) != '*') {
		/* The server routes an absolute-form target by its path, which this program
		 * does not match on: refused, never passed undecided. */
		count(c, DLB_XDP_C_slow_path_absolute_form);
		return head_policy(ctx, sc, &v, fk, cfg->on_malformed_head, c);
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
		m->host_off = sp->host_off;
		m->host_len = sp->have_host ? host_without_port(cpu, sp->host_off, sp->host_len) : 0;
		m->count = count;
		m->found = 0;
		if (count == 0 || count > DLB_XDP_MAX_RULES)
			return stream_pass(sc, st);
		bpf_loop(DLB_XDP_MAX_RULES / DLB_RULES_PER_CALL, match_rule, &cpu, 0);
		rule = m->found;
	}
	r = bpf_map_lookup_elem(&dlb_rules, &rule);
	if (!r)
		return stream_pass(sc, st);

	key = &sc->key;
	/* The short key's bytes; a long ID zeroes the rest of the key too. */
	__builtin_memset(key, 0, sizeof(struct dlb_xdp_user_skey));
	key->rule = rule;
	if (sp->have_id && sp->id_len > 0) {
		__u32 len = sp->id_len;
		if (len > DLB_XDP_MAX_ID) {
			/* as the engine: an identity longer than the key holds is refused */
			count(c, DLB_XDP_C_oversize_heads);
			return head_policy(ctx, sc, &v, fk, cfg->on_oversize_head, c);
		}
		key->kind = DLB_XDP_KEY_IDENTITY;
		key->id_len = len;
		copy_id(sc, key, sp->id_off, len);
	} else {
		count(c, DLB_XDP_C_identity_missing);
		if (cfg->on_missing_identity == DLB_XDP_MISSING_PASS) {
			count(c, DLB_XDP_C_identity_missing_passed);
			return stream_pass(sc, st);
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
	if (d.allowed)
		__sync_fetch_and_add(&u->debt, r->cost);

decided:
	note_last(rule, &d);
	if (d.allowed) {
		count(c, DLB_XDP_C_allowed);
		c->rule_allowed[rule & (DLB_XDP_MAX_RULES - 1)]++;
		return stream_pass(sc, st);
	}
	count(c, DLB_XDP_C_limited);
	c->rule_limited[rule & (DLB_XDP_MAX_RULES - 1)]++;
	if (r->action == DLB_XDP_ACTION_SHADOW) {
		count(c, DLB_XDP_C_shadow_limited);
		return stream_pass(sc, st);
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
