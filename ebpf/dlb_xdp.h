/* Structs and constants shared by the XDP program (dlb_xdp.bpf.c) and its agent
 * (app/dlb-xdp, lib via ebpf/). One definition for both sides; sizes are checked with
 * _Static_assert / static_assert so that the two compilers agree on every layout.
 *
 * Maps (all created by the program's object, filled by the agent):
 *   dlb_config    array[1] of struct dlb_xdp_config: ports, identity header, policies
 *   dlb_rules     array[DLB_XDP_MAX_RULES] of struct dlb_xdp_rule, the default rule last
 *   dlb_users_short hash: struct dlb_xdp_user_skey -> struct dlb_xdp_user, users whose
 *                 key has id_len <= DLB_XDP_SHORT_ID (the kernel hashes the whole key
 *                 at every lookup: a short key is hashed and compared in a fraction of
 *                 the time)
 *   dlb_users     hash: struct dlb_xdp_user_key -> struct dlb_xdp_user (leases, local
 *                 bucket), users whose key has id_len > DLB_XDP_SHORT_ID. Every user is
 *                 in exactly one of the two maps, chosen by id_len; the kernel's hash
 *                 map is seeded per map, so crafted IDs do not pile into one bucket
 *   dlb_rejected  LRU hash: flows answered with a 429, until the server was reset
 *   dlb_counters  per-CPU array[1] of struct dlb_xdp_counters, summed by the agent
 */
#ifndef DLB_EBPF_DLB_XDP_H_
#define DLB_EBPF_DLB_XDP_H_

#include <linux/bpf.h>
#include <linux/types.h>

#ifdef __cplusplus
#define DLB_XDP_STATIC_ASSERT static_assert
#else
#define DLB_XDP_STATIC_ASSERT _Static_assert
#endif

/* Bytes of a request head the program holds (across packets) and scans; a longer head
 * is refused by on_oversize_head. Power of two: indexes into the scratch buffer are
 * masked with it. The small variant of the program (dlb_xdp_small.bpf.o, for kernels
 * whose verifier rejects the full one: docs/xdp.md, "The verifier") holds
 * DLB_XDP_SMALL_SCAN_BYTES in the same buffers. */
#define DLB_XDP_SCAN_BYTES 2048
#define DLB_XDP_SMALL_SCAN_BYTES 1024
DLB_XDP_STATIC_ASSERT((DLB_XDP_SMALL_SCAN_BYTES & (DLB_XDP_SMALL_SCAN_BYTES - 1)) == 0 &&
			      DLB_XDP_SMALL_SCAN_BYTES >= 256 &&
			      DLB_XDP_SMALL_SCAN_BYTES <= DLB_XDP_SCAN_BYTES,
		      "the small variant's head bound: a power of two within the buffers");
#define DLB_XDP_MAX_RULES 64
#define DLB_XDP_MAX_ID 256          /* identity bytes kept in a user key */
/* Identity bytes of a short user key (dlb_users_short): IDs up to this length (UUIDs,
 * API keys, addresses) are looked up with a 48-byte key instead of 264 bytes. */
#define DLB_XDP_SHORT_ID 40
#define DLB_XDP_MAX_ID_NAME 32      /* identity header name, ':' included */
#define DLB_XDP_MAX_METHOD 24
#define DLB_XDP_MAX_PREFIX 64
#define DLB_XDP_MAX_HOST 64
#define DLB_XDP_MAX_RULE_NAME 64
/* Leading and trailing optional whitespace trimmed from a header value; more is
 * treated as a malformed head. */
#define DLB_XDP_MAX_OWS 16
/* The rule's part of the 429 response: the static pieces between the numbers. */
#define DLB_XDP_TMPL_BYTES 512
#define DLB_XDP_TMPL_PIECES 6
/* Control commands per test-run call of the control program (fits one page). */
#define DLB_XDP_CTL_BATCH 8
#define DLB_XDP_RETRY_MAX_S (365ULL * 24 * 3600) /* DLB_RETRY_AFTER_MAX_S */

enum dlb_xdp_mode { DLB_XDP_MODE_STRICT = 0, DLB_XDP_MODE_LOCAL = 1, DLB_XDP_MODE_SYNCED = 2 };
enum dlb_xdp_action { DLB_XDP_ACTION_REJECT = 0, DLB_XDP_ACTION_DROP = 1, DLB_XDP_ACTION_SHADOW = 2 };
enum dlb_xdp_failure { DLB_XDP_FAIL_LOCAL = 0, DLB_XDP_FAIL_OPEN = 1, DLB_XDP_FAIL_CLOSED = 2 };
enum dlb_xdp_missing_id { DLB_XDP_MISSING_SOURCE_IP = 0, DLB_XDP_MISSING_LIMIT = 1, DLB_XDP_MISSING_PASS = 2 };
enum dlb_xdp_head_policy { DLB_XDP_HEAD_FORWARD = 0, DLB_XDP_HEAD_DROP = 1, DLB_XDP_HEAD_RESET = 2 };
enum dlb_xdp_frame_policy { DLB_XDP_FRAME_FORWARD = 0, DLB_XDP_FRAME_DROP = 1 };
enum dlb_xdp_overflow { DLB_XDP_OVERFLOW_ALLOW = 0, DLB_XDP_OVERFLOW_LIMIT = 1 };

/* Kinds of user key: an identity header value, the client's address when the
 * identity is missing and the policy is source_ip, or the digest of an identity longer
 * than DLB_XDP_MAX_ID bytes: its first DLB_XDP_DIGEST_BYTES bytes of SHA-256 (computed
 * by the program, ebpf/dlb_xdp_sha.h), which are dlb::UserDigest of the identity, so
 * the agent names the user's Redis bucket from the key alone (dlb::AppendRedisKey). */
enum dlb_xdp_key_kind {
	DLB_XDP_KEY_IDENTITY = 0, DLB_XDP_KEY_IPV4 = 1, DLB_XDP_KEY_IPV6 = 2, DLB_XDP_KEY_DIGEST = 3,
};
#define DLB_XDP_DIGEST_BYTES 15     /* dlb::kDigestBytes; a digest key is a short key */

struct dlb_xdp_config {
	__u64 port_bits[1024];          /* TCP destination ports of the services: bit p */
	__u8 id_name[DLB_XDP_MAX_ID_NAME]; /* identity header name, lower case, then ':' */
	__u8 id_fold[DLB_XDP_MAX_ID_NAME]; /* 0x20 where id_name has a letter (case fold) */
	__u8 id_mask[DLB_XDP_MAX_ID_NAME]; /* 0xff over the name's bytes */
	__u32 id_name_len;              /* without the ':' */
	__u32 max_identity_bytes;       /* longer than DLB_XDP_MAX_ID: keyed by digest */
	__u32 max_head_bytes;
	__u16 rule_count;               /* the default rule included (it is last) */
	__u8 on_missing_identity;       /* enum dlb_xdp_missing_id */
	__u8 on_not_http;               /* enum dlb_xdp_head_policy */
	__u8 on_malformed_head;         /* enum dlb_xdp_head_policy */
	__u8 on_oversize_head;          /* enum dlb_xdp_head_policy */
	__u8 on_fragment;               /* enum dlb_xdp_frame_policy */
	__u8 on_malformed_frame;        /* enum dlb_xdp_frame_policy */
	__u8 max_ipv6_ext;              /* extension headers followed, <= 8 (the agent refuses more) */
	__u8 store_down;                /* set by the agent while its breaker is open */
	__u8 enabled;                   /* 0 until the agent pushed a config: pass all */
	__u8 pad0;
	__u16 max_header_lines;         /* header lines of a head, 1..1024 */
	__u8 pad1[6];
};
DLB_XDP_STATIC_ASSERT(sizeof(struct dlb_xdp_config) == 8192 + 3 * DLB_XDP_MAX_ID_NAME + 32,
		      "dlb_xdp_config layout");

/* A compiled rule. Bucket parameters are whole nanoseconds: interval_ns = T rounded up
 * (never admits more than the library's fixed-point T), 0 for a bucket that never
 * leaks (its TAT is then a count of admitted units). local_* is the bucket used when a
 * synced rule has no lease and when the store is down: the participant's share of the
 * rule (capacity and rate times 1/N, N the live participants), set by the agent. */
struct dlb_xdp_rule {
	__u8 method[DLB_XDP_MAX_METHOD];
	__u8 path_prefix[DLB_XDP_MAX_PREFIX];
	__u8 host[DLB_XDP_MAX_HOST];    /* lower case, no port */
	__u8 method_len;                /* 0: any method */
	__u8 path_len;                  /* 0: any path */
	__u8 host_len;                  /* 0: any host */
	__u8 mode;                      /* enum dlb_xdp_mode */
	__u8 action;                    /* enum dlb_xdp_action */
	__u8 on_store_failure;          /* enum dlb_xdp_failure */
	__u8 on_table_full;             /* enum dlb_xdp_overflow */
	__u8 fold_case;                 /* 1: compare paths with letters folded
	                                 * (DLB_PATH_FOLD_CASE, lib/dlb/path.h) */
	__u64 capacity;
	__u64 interval_ns;
	__u64 cost;
	__u64 local_capacity;
	__u64 local_interval_ns;
	/* The 429 response is tmpl piece 0, Content-Length, piece 1, Retry-After, piece 2,
	 * remaining, piece 3, Retry-After, piece 4, Retry-After, piece 5. */
	__u16 tmpl_off[DLB_XDP_TMPL_PIECES];
	__u16 tmpl_len[DLB_XDP_TMPL_PIECES];
	__u16 body_static_len;          /* bytes of the JSON body without its number */
	__u16 pad1;
	/* Retry-After (s) of a head refused without a bucket (no identity under limit,
	 * a full table under limit): dlb_no_bucket_retry_after_s (lib/dlb/retry_after.h),
	 * the engine's value for the same rule. */
	__u32 no_bucket_retry_s;
	__u8 tmpl[DLB_XDP_TMPL_BYTES];
};
DLB_XDP_STATIC_ASSERT(sizeof(struct dlb_xdp_rule) == 152 + 8 + 40 + 32 + 512, "dlb_xdp_rule layout");

struct dlb_xdp_user_key {
	__u16 rule;
	__u16 id_len;
	__u8 kind;                      /* enum dlb_xdp_key_kind */
	__u8 pad[3];
	__u8 id[DLB_XDP_MAX_ID];        /* zero past id_len */
};
DLB_XDP_STATIC_ASSERT(sizeof(struct dlb_xdp_user_key) == 8 + DLB_XDP_MAX_ID, "user key layout");

/* The key of dlb_users_short: the first bytes of struct dlb_xdp_user_key, so a user key
 * with id_len <= DLB_XDP_SHORT_ID (zero past id_len) is its own short key. Two keys of
 * different identities differ within these bytes: rule, id_len, kind or an ID byte. */
struct dlb_xdp_user_skey {
	__u16 rule;
	__u16 id_len;                   /* <= DLB_XDP_SHORT_ID */
	__u8 kind;                      /* enum dlb_xdp_key_kind */
	__u8 pad[3];
	__u8 id[DLB_XDP_SHORT_ID];      /* zero past id_len */
};
DLB_XDP_STATIC_ASSERT(sizeof(struct dlb_xdp_user_skey) == 8 + DLB_XDP_SHORT_ID, "short user key layout");
DLB_XDP_STATIC_ASSERT(DLB_XDP_SHORT_ID % 8 == 0 && DLB_XDP_SHORT_ID >= 16 &&
			      DLB_XDP_SHORT_ID < DLB_XDP_MAX_ID,
		      "short IDs hold IPv6 addresses and are shorter than long ones");
DLB_XDP_STATIC_ASSERT(DLB_XDP_DIGEST_BYTES < DLB_XDP_SHORT_ID, "a digest key is a short key");
DLB_XDP_STATIC_ASSERT(__builtin_offsetof(struct dlb_xdp_user_skey, id) ==
			      __builtin_offsetof(struct dlb_xdp_user_key, id) &&
			      __builtin_offsetof(struct dlb_xdp_user_skey, kind) ==
			      __builtin_offsetof(struct dlb_xdp_user_key, kind),
		      "a short key is a prefix of the user key");

/* One user's bucket on this host. The program and the agent change lease, demand and
 * debt with atomic instructions only (the agent through the control program), so no
 * admission is lost between a read and a write; the program changes the local bucket's
 * TAT by compare-and-swap (an admission swaps in the TAT it computed from the one it
 * read, or reads again), and the control program stores it whole under the lock, which
 * only the control program takes (and BPF_F_LOCK reads of the value). */
struct dlb_xdp_user {
	struct bpf_spin_lock lock;
	__u32 waited;                   /* a head waited for a lease at (monotonic ns >> 20); 0: none */
	__s64 lease;                    /* units charged in Redis and not yet admitted */
	__u64 demand;                   /* heads seen since the agent's last round */
	__u64 debt;                     /* units admitted without a lease, to charge */
	__u64 tat_ns;                   /* local bucket (local mode, no lease, store down) */
	__u64 hold_until_ns;            /* Redis full: reject until then (monotonic ns) */
	__u64 last_seen_ns;
};
DLB_XDP_STATIC_ASSERT(sizeof(struct dlb_xdp_user) == 56, "user value layout");

/* Flows answered with a 429: the client's next segment becomes a RST to the local
 * server at the sequence number it expects (it never saw the head), later ones a RST to
 * the client. */
struct dlb_xdp_flow_key {
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
	__u32 family;
};
DLB_XDP_STATIC_ASSERT(sizeof(struct dlb_xdp_flow_key) == 40, "flow key layout");
struct dlb_xdp_flow {
	__u32 server_next_seq;          /* the first byte of the rejected head */
	__u32 server_reset;             /* 1 once the server got its RST; 2: the TC program
	                                 * sent it (the client's ACK of the 429 is dropped) */
};

/* Per client-to-server flow of a service port: where the next byte the program has
 * not passed is, and whether it starts a head or is body. Created by the client's SYN;
 * only bytes at next_seq move it (a segment after a gap is dropped unless it is all
 * body, a retransmission of passed bytes is passed), and SYN, FIN and RST change it only
 * in window (RFC 5961), so that no crafted control segment moves where heads start. A
 * flow without one (its SYN not seen, or evicted) has its data refused: the program
 * cannot tell a head from a body. */
struct dlb_xdp_stream {
	__u32 next_seq;                 /* the first byte not passed yet */
	__u32 body_left;                /* body bytes from next_seq before the next head */
	__u32 flags;                    /* DLB_XDP_STREAM_* */
	__u32 pad;
	__u64 last_ns;                  /* the last segment seen (monotonic ns) */
};
DLB_XDP_STATIC_ASSERT(sizeof(struct dlb_xdp_stream) == 24, "stream layout");
#define DLB_XDP_STREAM_CLOSED 1         /* an in-window FIN or RST: a SYN may reuse the tuple */
#define DLB_XDP_STREAM_NOT_HTTP 2       /* first bytes not HTTP, on_not_http forward: passed */
#define DLB_XDP_STREAM_HEADS 4          /* a head was seen: not-HTTP now is a desync */
#define DLB_XDP_STREAM_PARTIAL 8        /* a head begun, its bytes in dlb_partial */

/* The bytes of a head begun in earlier packets of a flow, held until the packet that ends
 * it (the server cannot act on a head before its last byte): then the whole head is
 * scanned and decided. Up to DLB_XDP_SCAN_BYTES bytes. */
struct dlb_xdp_partial {
	__u32 len;
	__u32 pad;
	__u8 head[DLB_XDP_SCAN_BYTES];
};
DLB_XDP_STATIC_ASSERT(sizeof(struct dlb_xdp_partial) == 8 + DLB_XDP_SCAN_BYTES, "partial layout");
/* A SYN on a flow that is not closed starts a new connection only after this long
 * without a segment (a live flow ignores it, as Linux does). */
#define DLB_XDP_STREAM_IDLE_NS (30ULL * 1000000000ULL)
/* Retransmitted bytes further than this behind next_seq are dropped, not passed. */
#define DLB_XDP_STREAM_BEHIND (1U << 20)

/* With the TC program attached (ebpf/dlb_tc.bpf.c, clsact ingress of the same
 * interface), a rejected head is not sent back with XDP_TX: the program builds the 429 +
 * FIN in place, puts this record in front of the frame (XDP metadata) and passes it. The
 * TC program clones the frame to the interface's egress (the 429 to the client) and
 * turns the original into a RST to the local server at server_seq, the first byte of the
 * rejected head, so the server frees the connection at once. dlb_tc_on (an array of one
 * __u32 in the XDP program's object) is 1 while the TC program is attached. */
#define DLB_XDP_TC_MAGIC 0xd1b7c429U
struct dlb_xdp_tc_meta {
	__u32 magic;
	__u32 server_seq;               /* network byte order */
};
DLB_XDP_STATIC_ASSERT(sizeof(struct dlb_xdp_tc_meta) == 8, "tc meta layout");

/* The agent's operations on a user bucket, run atomically by the control program
 * (bpf_prog_test_run of dlb_xdp_control over an array of commands). The key is a full
 * user key; the program looks it up in the map its id_len picks. */
enum dlb_xdp_ctl_op {
	DLB_XDP_CTL_NONE = 0,
	DLB_XDP_CTL_COLLECT = 1,        /* out: lease, demand and debt swapped with 0 */
	DLB_XDP_CTL_GRANT = 2,          /* lease += in_lease; debt += in_debt;
	                                 * hold_until_ns = in_hold_until_ns;
	                                 * if in_tat_unit_ns: tat_ns = in_tat_ns +
	                                 * (debt before this op) * in_tat_unit_ns */
	DLB_XDP_CTL_ADD_DEBT = 3,       /* debt += in_debt (a round that failed gives
	                                 * its collected debt back; the hold stays) */
};
struct dlb_xdp_ctl {
	struct dlb_xdp_user_key key;
	__u32 op;
	__u32 found;                    /* out: 1 if the key exists */
	__s64 in_lease;
	__u64 in_debt;
	__u64 in_hold_until_ns;
	/* The local share bucket's TAT: the global level Redis reported (plus debt it had
	 * no room for, less the new lease) scaled to this host's share, plus what the local
	 * bucket admitted while the round was in flight (the debt since the collect, which
	 * that level does not hold yet), so the local bucket has the room the global bucket
	 * has, no more. in_tat_unit_ns: TAT per unit of debt (the local interval, 1 for a
	 * bucket that never leaks); 0: TAT unchanged. */
	__u64 in_tat_ns;
	__u64 in_tat_unit_ns;
	__s64 out_lease;
	__u64 out_demand;
	__u64 out_debt;
	__u64 out_last_seen_ns;
	__u64 out_waited;               /* the user's `waited` */
};
DLB_XDP_STATIC_ASSERT(sizeof(struct dlb_xdp_ctl) == sizeof(struct dlb_xdp_user_key) + 88,
		      "ctl layout");

/* Parse and decision outcomes, counted per CPU. The list is declared once; the agent
 * generates metric names from it (dlb_xdp_<name>_total). */
#define DLB_XDP_COUNTERS(X)                                                            \
	X(frames, "frames", "Frames seen by the program.")                             \
	X(not_ip, "not_ip", "Frames that are not IPv4 or IPv6 (passed).")              \
	X(not_tcp, "not_tcp", "IP packets that are not TCP (passed).")                 \
	X(fragments, "fragments", "IP fragments (passed or dropped per on_fragment).") \
	X(malformed_frames, "malformed_frames", "Truncated or inconsistent L2-L4 headers.") \
	X(other_port, "other_port", "TCP segments to other ports (passed).")          \
	X(no_payload, "no_payload", "TCP segments without payload (passed).")         \
	X(non_head, "non_head", "Segments whose payload does not start a request head (passed).") \
	X(slow_path_split, "slow_path_split", "Heads that could not be held until their end (refused per on_oversize_head).") \
	X(slow_path_authority_form, "slow_path_authority_form", "Heads whose target is neither in origin, absolute nor asterisk form (CONNECT's authority; refused per on_malformed_head).") \
	X(absolute_form, "absolute_form", "Heads with an absolute-form target (decided on its path and authority).") \
	X(not_http, "not_http", "Payloads at a head position that are not HTTP.")     \
	X(malformed_heads, "malformed_heads", "Malformed request heads.")             \
	X(oversize_heads, "oversize_heads", "Heads longer than max_head_bytes.")      \
	X(heads, "heads", "Request heads decided.")                                   \
	X(allowed, "allowed", "Heads admitted.")                                      \
	X(limited, "limited", "Heads over their limit.")                              \
	X(rejected, "rejected", "Limited heads answered with 429.")                   \
	X(tc_rejects, "tc_rejects", "429s handed to the TC program (clone to the client, RST to the server).") \
	X(dropped, "dropped", "Limited heads dropped (action drop).")                 \
	X(shadow_limited, "shadow_limited", "Limited heads passed (action shadow).")  \
	X(reject_failed, "reject_failed", "429 frames that could not be built (the head reset instead).") \
	X(identity_missing, "identity_missing", "Heads without the identity header.") \
	X(identity_digests, "identity_digests", "Heads whose identity is longer than a user key holds (keyed by its SHA-256).") \
	X(identity_source_ip, "identity_source_ip", "Heads keyed by the client address.") \
	X(identity_missing_passed, "identity_missing_passed", "Heads without identity passed undecided.") \
	X(identity_missing_limited, "identity_missing_limited", "Heads without identity limited.") \
	X(leased, "leased", "Heads admitted against a lease.")                        \
	X(held, "held", "Heads limited because Redis reported the bucket full.")      \
	X(lease_waits, "lease_waits", "Heads of a synced rule dropped to wait for a lease (no lease, the share used, Redis not known full): the client sends them again.") \
	X(local_decisions, "local_decisions", "Heads decided by the local bucket.")   \
	X(store_down_open, "store_down_open", "Heads admitted while the store is down (open).") \
	X(store_down_closed, "store_down_closed", "Heads limited while the store is down (closed).") \
	X(table_full, "table_full", "New users that found the user table full.")      \
	X(server_resets, "server_resets", "RSTs passed to the local server after a 429.") \
	X(client_resets, "client_resets", "RSTs sent to clients (reset policy, late segments).") \
	X(rejected_flow_dropped, "rejected_flow_dropped", "Segments of a rejected flow dropped.") \
	X(streams_opened, "streams_opened", "Client SYNs that started a tracked flow.")  \
	X(syn_ignored, "syn_ignored", "SYNs on a live flow (not in window: the flow kept).") \
	X(split_heads_held, "split_heads_held", "Packets of a head that ends in a later packet (passed, the head held until then).") \
	X(stream_untracked, "stream_untracked", "Data of flows without state (SYN not seen or evicted; refused per on_malformed_head).") \
	X(stream_out_of_order, "stream_out_of_order", "Segments after a gap that may hold a head (dropped; sent again by the client).") \
	X(stream_retransmits, "stream_retransmits", "Segments of bytes already passed (passed).") \
	X(body_segments, "body_segments", "Segments of request bodies (passed).")    \
	X(pipelined_refused, "pipelined_refused", "Packets with another request after a first one longer than the program can cut after (refused per on_malformed_head).") \
	X(pipelined_cut, "pipelined_cut", "Packets cut after their first request, admitted (the client sends the rest again; its next head is decided then).") \
	X(pipelined_cut_failed, "pipelined_cut_failed", "Pipelined packets that could not be cut (dropped; the client sends them again).") \
	X(unframed_bodies, "unframed_bodies", "Heads with Transfer-Encoding (the program follows only Content-Length; refused per on_malformed_head).") \
	X(paths_not_normal, "paths_not_normal", "Targets whose path is not its normal form (refused per on_malformed_head).") \
	X(not_http_passed, "not_http_passed", "Flows whose first bytes are not HTTP (passed per on_not_http).")

enum dlb_xdp_counter_index {
#define DLB_XDP_X(field, name, help) DLB_XDP_C_##field,
	DLB_XDP_COUNTERS(DLB_XDP_X)
#undef DLB_XDP_X
	DLB_XDP_COUNTER_COUNT
};

struct dlb_xdp_counters {
	__u64 c[DLB_XDP_COUNTER_COUNT];
	__u64 rule_allowed[DLB_XDP_MAX_RULES];
	__u64 rule_limited[DLB_XDP_MAX_RULES];
};

/* What the program returned for a test-run frame is not enough to compare decisions
 * with the C++ engine; tests read this per-CPU record of the last head decided. */
enum dlb_xdp_scan_result {
	DLB_XDP_SCAN_MORE = 0,          /* the head does not end in the packet */
	DLB_XDP_SCAN_OK = 1,
	DLB_XDP_SCAN_NOT_HTTP = 2,
	DLB_XDP_SCAN_MALFORMED = 3,
	DLB_XDP_SCAN_SLOW = 4,
};
struct dlb_xdp_last {
	__u32 rule;
	__u32 allowed;
	__u64 retry_after_ns;
	__s64 remaining;
	__u64 seq;                      /* bumped per decided head */
	/* The last payload scanned as a head (any outcome): enum dlb_xdp_scan_result and
	 * the positions found, as byte offsets in the payload. sp1, sp2, q: 1 + the
	 * position of the request line's first SP, second SP, first '?' (0: none);
	 * head_end: 1 + the position of the empty line's LF; host and identity: the
	 * trimmed value, its length plus 1 (0: header absent). */
	__u32 scan_result;
	__u32 scan_sp1, scan_sp2, scan_q;
	__u32 scan_head_end;
	__u32 scan_host_off, scan_host_len;
	__u32 scan_id_off, scan_id_len;
	__u32 scan_pad;
	__u64 scan_seq;                 /* bumped per payload scanned */
};

#endif /* DLB_EBPF_DLB_XDP_H_ */
