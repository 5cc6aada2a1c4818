// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* The XDP program's constants, maps, per-CPU scratch and counters (included by
 * dlb_xdp.bpf.c only; the structs shared with the agent are in dlb_xdp.h). */
#pragma once

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

/* The searches of an absolute-form target (dlb_abs_search). */
struct dlb_abs_search {
	__u32 phase, p, end, at;
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
	__u32 cut_keep;               /* payload bytes kept when the head passes; 0: all */
	struct dlb_sha256 sha;        /* a long identity's digest (dlb_id_digest) */
	/* An absolute-form target's path and authority (dlb_absolute_target) */
	struct dlb_abs_search abs;
	__u32 abs_form;               /* 1: the head's target is in absolute form */
	__u32 abs_path_off, abs_path_len;
	__u32 abs_host_off, abs_host_len;
};
static struct dlb_scratch dlb_scratch[DLB_MAX_CPUS];

static __always_inline struct dlb_sha256 *dlb_sha_state(__u32 cpu)
{
	return &dlb_scratch[cpu & (DLB_MAX_CPUS - 1)].sha;
}
_Static_assert(__builtin_offsetof(struct dlb_scratch, head) - __builtin_offsetof(struct dlb_scratch, part_len) ==
		       __builtin_offsetof(struct dlb_xdp_partial, head),
	       "the scratch's held head is a struct dlb_xdp_partial");

static __always_inline void count(struct dlb_xdp_counters *c, int idx)
{
	if (c && idx >= 0 && idx < DLB_XDP_COUNTER_COUNT)
		c->c[idx]++;
}
