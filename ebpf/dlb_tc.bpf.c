// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* The TC half of the XDP fallback's reject (docs/xdp.md: XDP_TX for the
 * reply, and a TC program where a clone is needed), attached to the clsact ingress hook
 * of the interface the XDP program runs on.
 *
 * The XDP program hands over a rejected head as the finished 429 + FIN toward the client
 * with a struct dlb_xdp_tc_meta in front of it (dlb_xdp.h). This program
 *   1. clones that frame to the interface's egress: the client gets its 429;
 *   2. turns the original into a RST from the client to the local server, at the
 *      sequence number the server expects next (the first byte of the head it never
 *      saw), and lets it go up the stack: the server frees the connection at once, not
 *      at the client's next segment.
 * Every other packet passes untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "dlb_bpf_csum.h"
#include "dlb_xdp.h"

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

/* Outcomes, per CPU: [0] clones sent, [1] server RSTs, [2] failures. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} dlb_tc_counters SEC(".maps");

static __always_inline void tc_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&dlb_tc_counters, &idx);
	if (v)
		*v += 1;
}

/* Ethernet with up to two VLAN tags inline; IP (as the XDP program built it: no
 * options) and a 20-byte TCP header, word-aligned for the checksum helper. */
struct dlb_tc_hdrs {
	__u8 b[24];
	__u32 l34[(40 + 20) / 4];
};

SEC("tc")
int dlb_tc_reject(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *meta_end = data;
	struct dlb_xdp_tc_meta *meta = (void *)(long)skb->data_meta;
	struct dlb_tc_hdrs h;
	__u32 server_seq, l3 = 14, ip_len;
	__u16 proto;
	__u8 *ip, *tcp;
	__s64 sum;

	if ((void *)(meta + 1) > meta_end || meta->magic != DLB_XDP_TC_MAGIC)
		return TC_ACT_OK;
	server_seq = meta->server_seq;

	/* 1. the 429 + FIN, as the XDP program built it, to the client */
	if (bpf_clone_redirect(skb, skb->ifindex, 0) == 0)
		tc_count(0);
	else
		tc_count(2);

	/* 2. the original becomes the server's RST */
	if (bpf_skb_load_bytes(skb, 0, h.b, 14))
		goto fail;
	proto = ((__u16)h.b[12] << 8) | h.b[13];
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
			if (bpf_skb_load_bytes(skb, l3, h.b + 14 + 4 * i, 4))
				goto fail;
			proto = ((__u16)h.b[l3 + 2] << 8) | h.b[l3 + 3];
			l3 += 4;
		}
	}
	if (proto == ETH_P_IP)
		ip_len = 20;
	else if (proto == ETH_P_IPV6)
		ip_len = 40;
	else
		goto fail;
	if (l3 > 22)
		goto fail;
	if (bpf_skb_load_bytes(skb, l3, h.l34, ip_len + 20))
		goto fail;
	ip = (__u8 *)h.l34;
	tcp = ip + ip_len;

	/* addresses back from client to server */
	{
		__u8 t[16];
		__builtin_memcpy(t, h.b, 6);
		__builtin_memcpy(h.b, h.b + 6, 6);
		__builtin_memcpy(h.b + 6, t, 6);
		if (ip_len == 20) {
			__builtin_memcpy(t, ip + 12, 4);
			__builtin_memcpy(ip + 12, ip + 16, 4);
			__builtin_memcpy(ip + 16, t, 4);
		} else {
			__builtin_memcpy(t, ip + 8, 16);
			__builtin_memcpy(ip + 8, ip + 24, 16);
			__builtin_memcpy(ip + 24, t, 16);
		}
		__builtin_memcpy(t, tcp, 2);
		__builtin_memcpy(tcp, tcp + 2, 2);
		__builtin_memcpy(tcp + 2, t, 2);
	}
	{
		struct tcphdr *th = (struct tcphdr *)tcp;
		th->seq = server_seq;
		th->ack_seq = 0;
		((__u8 *)th)[12] = 5 << 4;
		((__u8 *)th)[13] = 0x04;   /* RST */
		th->window = 0;
		th->check = 0;
		th->urg_ptr = 0;
	}
	if (ip_len == 20) {
		struct iphdr *iph = (struct iphdr *)ip;
		iph->tot_len = bpf_htons(40);
		iph->check = 0;
		iph->check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)ip, 20, 0));
		sum = bpf_csum_diff(0, 0, (__be32 *)(ip + 12), 8, 0);
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)ip;
		ip6->payload_len = bpf_htons(20);
		sum = bpf_csum_diff(0, 0, (__be32 *)(ip + 8), 32, 0);
	}
	{
		__u32 w = bpf_htonl((IPPROTO_TCP << 16) | 20);
		sum = bpf_csum_diff(0, 0, &w, 4, sum);
	}
	sum = bpf_csum_diff(0, 0, (__be32 *)tcp, 20, sum);
	if (sum < 0)
		goto fail;
	((struct tcphdr *)tcp)->check = csum_fold(sum);

	/* The 429's payload stays behind the headers: IP's length (40, or 20 for IPv6)
	 * makes the stack trim it, as it trims Ethernet padding. */
	/* the frame came in addressed to the client's MAC (PACKET_OTHERHOST, which IP
	 * drops); it is the server's now */
	if (bpf_skb_change_type(skb, 0 /* PACKET_HOST */))
		goto fail;
	if (bpf_skb_store_bytes(skb, 0, h.b, l3, BPF_F_RECOMPUTE_CSUM) ||
	    bpf_skb_store_bytes(skb, l3, h.l34, ip_len + 20, BPF_F_RECOMPUTE_CSUM))
		goto fail;
	tc_count(1);
	return TC_ACT_OK;
fail:
	tc_count(2);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL"; /* the SPDX line's GPL-2.0 alternative, as the kernel names it */
