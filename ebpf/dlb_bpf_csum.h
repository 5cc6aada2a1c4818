/* Checksum folding shared by the BPF programs (dlb_xdp.bpf.c, dlb_tc.bpf.c): BPF C only. */
#ifndef DLB_EBPF_DLB_BPF_CSUM_H_
#define DLB_EBPF_DLB_BPF_CSUM_H_

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* A 64-bit one's-complement sum (bpf_csum_diff's) folded to the 16-bit checksum. */
static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

#endif /* DLB_EBPF_DLB_BPF_CSUM_H_ */
