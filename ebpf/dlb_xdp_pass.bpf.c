// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* XDP_PASS for the peer of a veth that runs dlb_xdp natively: a veth delivers the
 * frames its peer sends with XDP_TX reliably only when it runs an XDP program itself
 * (with GRO alone some are lost). Used by the end-to-end tests and the benchmark's
 * client namespace. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int dlb_xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL"; /* the SPDX line's GPL-2.0 alternative, as the kernel names it */
