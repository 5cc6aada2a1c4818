// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* L2-L4 of a frame: Ethernet and VLAN tags, IPv4 and IPv6 with extension headers,
 * TCP, into a struct dlb_view (cursor-style, every read bounds-checked). */
#pragma once

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
