// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* The XDP program's SHA-256 (ebpf/dlb_xdp_sha.h) on its own, for xdp_prog_test: the
 * test-run frame's bytes after its first 14 (the Ethernet header XDP needs) are the
 * message; its digest goes to sha_out. */
#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct dlb_sha256;
static __always_inline struct dlb_sha256 *sha_state_of(__u32 cpu);
#define DLB_SHA_STATE(cpu) sha_state_of(cpu)
#include "dlb_xdp_sha.h"

static struct dlb_sha256 sha_state[8];
static __always_inline struct dlb_sha256 *sha_state_of(__u32 cpu)
{
	return &sha_state[cpu & 7];
}
__u8 sha_out[32];
__u32 sha_ok;

SEC("xdp")
int sha_test(struct xdp_md *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id() & 7;
	__u32 len = ctx->data_end - ctx->data;
	struct dlb_sha256 *s = &sha_state[cpu];

	sha_ok = 0;
	if (len < 14)
		return XDP_ABORTED;
	len -= 14;
	if (len > DLB_SHA_MAX_LEN)
		return XDP_ABORTED;
	if (len && bpf_xdp_load_bytes(ctx, 14, s->msg, len & (DLB_SHA_MSG_BYTES - 1)))
		return XDP_ABORTED;
	if (!dlb_sha256_run(cpu, len))
		return XDP_ABORTED;
#pragma unroll
	for (int i = 0; i < 8; i++)
		*(__u32 *)(sha_out + 4 * i) = bpf_htonl(s->h[i]);
	sha_ok = 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
