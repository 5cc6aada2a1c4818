// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* The floor of a per-request-head decision in XDP on this kernel: programs that do only
 * what any such decision must do, and nothing else, run by bench_xdp on the same
 * packets as dlb_xdp, side by side.
 *
 *   floor_harness  XDP_PASS: the test-run loop's own cost, in every figure
 *   floor_l4       Ethernet, IPv4 (IHL), TCP (data offset) with bounds checks, port 80
 *   floor_clock    floor_l4 and bpf_ktime_get_ns (the bucket's "now")
 *   floor_lookup   floor_clock and one hash map lookup with a 16-byte key (the
 *                  4-tuple; a user key is never shorter) and a TAT update in its value
 *   floor_scan     floor_l4 and a scan of the payload to the end of the head (the
 *                  request's boundary: an empty line, LF LF or LF CR LF), at most 640
 *                  bytes, counting the lines; XDP_DROP when no end is found
 *   floor_all      floor_scan, then floor_lookup's clock and lookup: the floor of a
 *                  head decision. It reads no name, no value and no request line.
 *
 * The scan is the cheapest exact one found: 32 bytes per bounds check, a word with no
 * LF costing four operations; a word with an LF is then looked at exactly. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define FLOOR_MAX_BLOCKS 20   /* 20 * 32 = 640 bytes of head at most */

#define ONES 0x0101010101010101ULL
#define LOW7 0x7f7f7f7f7f7f7f7fULL
#define HIGHS 0x8080808080808080ULL

struct floor_key {
	__u32 saddr, daddr;
	__u16 sport, dport;
	__u32 pad;
};

struct floor_bucket {
	__u64 tat;
	__u64 lines;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct floor_key);
	__type(value, struct floor_bucket);
} floor_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} floor_sink SEC(".maps");

struct floor_l4 {
	struct iphdr *ip;
	struct tcphdr *tcp;
	void *payload;
	void *end;
};

static __always_inline int parse_l4(struct xdp_md *ctx, struct floor_l4 *v)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u32 ihl, doff;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
		return -1;
	ihl = ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return -1;
	tcp = (void *)ip + ihl;
	if ((void *)(tcp + 1) > end || tcp->dest != bpf_htons(80))
		return -1;
	doff = tcp->doff * 4;
	if (doff < sizeof(*tcp) || (void *)tcp + doff > end)
		return -1;
	v->ip = ip;
	v->tcp = tcp;
	v->payload = (void *)tcp + doff;
	v->end = end;
	return 0;
}

/* 0x80 in each byte of x that is zero; exact in every byte. */
static __always_inline __u64 zero_bytes(__u64 x)
{
	return ~(((x & LOW7) + LOW7) | x) & HIGHS;
}

/* Non-zero in the high bits if x may hold a zero byte (and always when it does). */
static __always_inline __u64 maybe_zero(__u64 x)
{
	return (x - ONES) & ~x;
}

/* 0x80 in the lowest zero byte of x and maybe in bytes above it (a 0x01 byte right
 * above a zero one), never in a byte below: cheaper, for filters. */
static __always_inline __u64 low_zero(__u64 x)
{
	return (x - ONES) & ~x & HIGHS;
}

/* One word x (after the word px, whose LF flags are plf), updating lines and plf:
 * non-zero if x holds the LF that ends the head (an LF after an LF, or after CR LF).
 * The filter's flags may count a vertical tab right after an LF as one more line; the
 * end is tested exactly, and only where two flags are one or two bytes apart. */
#define SCAN_WORD(x, px, plf, lines)                                                   \
	({                                                                             \
		__u64 lf_ = low_zero((x) ^ (0x0a * ONES));                             \
		__u64 ends_ = 0;                                                       \
		if (lf_) {                                                             \
			(lines) += (__u32)(((lf_ >> 7) * ONES) >> 56);                 \
			if (lf_ & (lf_ << 8 | (plf) >> 56 | lf_ << 16 | (plf) >> 48)) { \
				__u64 l_ = zero_bytes((x) ^ (0x0a * ONES));            \
				__u64 pl_ = zero_bytes((px) ^ (0x0a * ONES));          \
				__u64 c_ = zero_bytes((x) ^ (0x0d * ONES));            \
				__u64 pc_ = zero_bytes((px) ^ (0x0d * ONES));          \
				ends_ = l_ & ((l_ << 8 | pl_ >> 56) |                  \
					      ((c_ << 8 | pc_ >> 56) &                 \
					       (l_ << 16 | pl_ >> 48)));               \
			}                                                              \
		}                                                                      \
		(plf) = lf_;                                                           \
		ends_;                                                                 \
	})

/* 1 when the head ends within the payload's first 640 bytes; *lines_out: its lines. */
static __always_inline int scan_head(const struct floor_l4 *v, __u32 *lines_out)
{
	void *p = v->payload;
	void *end = v->end;
	__u64 x, px = 0, plf = 0;
	__u32 lines = 0, len, rem, off;
	int i, k;

#pragma clang loop unroll(disable)
	for (i = 0; i < FLOOR_MAX_BLOCKS; i++) {
		__u64 any;

		if (p + 32 > end)
			goto words;
		any = maybe_zero(*(__u64 *)p ^ (0x0a * ONES)) |
		      maybe_zero(*(__u64 *)(p + 8) ^ (0x0a * ONES)) |
		      maybe_zero(*(__u64 *)(p + 16) ^ (0x0a * ONES)) |
		      maybe_zero(*(__u64 *)(p + 24) ^ (0x0a * ONES));
		if (any & HIGHS) {
#pragma clang loop unroll(full)
			for (k = 0; k < 4; k++) {
				x = *(__u64 *)(p + 8 * k);
				if (SCAN_WORD(x, px, plf, lines))
					goto found;
				px = x;
			}
		} else {
			/* No LF: the end of the head needs an LF among the two bytes
			 * before its own, so nothing carries from this block. */
			px = 0;
			plf = 0;
		}
		p += 32;
	}
	return 0;
words:
#pragma clang loop unroll(full)
	for (k = 0; k < 3; k++) {
		if (p + 8 > end)
			goto tail;
		x = *(__u64 *)p;
		if (SCAN_WORD(x, px, plf, lines))
			goto found;
		px = x;
		p += 8;
	}
tail:
	/* 0 to 7 bytes left: the payload's last 8 bytes, read again, those already seen
	 * shifted out (the opaque move keeps clang from computing on the end pointer). */
	asm volatile("" : "+r"(p));
	len = end - v->payload;
	rem = end - p;
	if (rem == 0 || rem > 7 || len < 8)
		return 0;
	off = (len - 8) & 0x3ff;
	if (v->payload + off + 8 > end)
		return 0;
	x = *(__u64 *)(v->payload + off) >> ((8 - rem) * 8);
	if (!SCAN_WORD(x, px, plf, lines))
		return 0;
found:
	*lines_out = lines;
	return 1;
}

static __always_inline __u64 now_kept(void)
{
	__u32 zero = 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 *sink = bpf_map_lookup_elem(&floor_sink, &zero);

	if (sink)
		*sink = now;
	return now;
}

/* One lookup and a TAT update; the bucket is created on the first run's miss. */
static __always_inline int touch_bucket(const struct floor_l4 *v, __u64 now, __u32 lines)
{
	struct floor_key key = {
		.saddr = v->ip->saddr,
		.daddr = v->ip->daddr,
		.sport = v->tcp->source,
		.dport = v->tcp->dest,
	};
	struct floor_bucket *b = bpf_map_lookup_elem(&floor_buckets, &key);
	__u64 tat;

	if (!b) {
		struct floor_bucket fresh = {.tat = now, .lines = lines};

		return bpf_map_update_elem(&floor_buckets, &key, &fresh, BPF_ANY) == 0 ? 0 : -1;
	}
	tat = b->tat > now ? b->tat : now;
	b->tat = tat + 1000;
	b->lines = lines;
	return 0;
}

SEC("xdp")
int floor_harness(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int floor_l4(struct xdp_md *ctx)
{
	struct floor_l4 v;

	return parse_l4(ctx, &v) == 0 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int floor_clock(struct xdp_md *ctx)
{
	struct floor_l4 v;

	if (parse_l4(ctx, &v) != 0)
		return XDP_DROP;
	now_kept();
	return XDP_PASS;
}

SEC("xdp")
int floor_lookup(struct xdp_md *ctx)
{
	struct floor_l4 v;

	if (parse_l4(ctx, &v) != 0)
		return XDP_DROP;
	return touch_bucket(&v, now_kept(), 0) == 0 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int floor_scan(struct xdp_md *ctx)
{
	struct floor_l4 v;
	__u32 lines = 0;

	if (parse_l4(ctx, &v) != 0 || !scan_head(&v, &lines))
		return XDP_DROP;
	/* the line count, kept (in the checksum field, which nothing reads here) */
	*(volatile __u16 *)&v.tcp->check = (__u16)lines;
	return XDP_PASS;
}

SEC("xdp")
int floor_all(struct xdp_md *ctx)
{
	struct floor_l4 v;
	__u32 lines = 0;

	if (parse_l4(ctx, &v) != 0 || !scan_head(&v, &lines))
		return XDP_DROP;
	return touch_bucket(&v, now_kept(), lines) == 0 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL"; /* the SPDX line's GPL-2.0 alternative, as the kernel names it */
