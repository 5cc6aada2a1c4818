// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0
/* SHA-256 (FIPS 180-4) in BPF, for user IDs longer than a user key holds: the key then
 * holds the digest's first DLB_XDP_DIGEST_BYTES bytes, which are dlb::DigestUserId of the
 * ID (lib/key/sha256.cc), so the agent names the same Redis bucket as every other form.
 *
 * The including file defines DLB_SHA_STATE(cpu), a pointer to the CPU's struct
 * dlb_sha256 (in map memory: the verifier tracks no values there, and the stack is
 * full). The caller puts the message in ->msg, then dlb_sha256_run() pads it and
 * compresses it block by block: one bpf_loop call per 64-byte block, each a call of the
 * global function dlb_sha256_block, verified once whatever the message's length. */
#pragma once

/* The longest message: the padded message (len + 9 bytes, rounded up to 64) fits
 * DLB_SHA_MSG_BYTES. An identity is a part of a head of at most DLB_XDP_SCAN_BYTES
 * bytes with a request line and its header name around it, so it is always shorter. */
#define DLB_SHA_MSG_BYTES 2048
#define DLB_SHA_MAX_LEN (DLB_SHA_MSG_BYTES - 9)

struct dlb_sha256 {
	__u32 h[8];                    /* the hash value: word i is digest bytes 4i..4i+3 */
	__u32 w[64];                   /* the block's message schedule */
	__u8 msg[DLB_SHA_MSG_BYTES];   /* the message, padded in place by dlb_sha256_run */
};

#define DLB_SHA_ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

/* The round constants: the loop below is unrolled, so they become immediates. */
static const __u32 dlb_sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2};

/* Block `block` of the CPU's padded message into its hash value. Straight-line code
 * (both loops unrolled): no branch, so the verifier walks it once. The empty asm at each
 * round keeps the compiler from hoisting the next rounds' loads: with them in registers
 * this function's stack outgrows what the verifier allows on top of the program's
 * (512 bytes for the whole call chain). */
#define DLB_SHA_ROUND_BARRIER() asm volatile("" ::: "memory")

__noinline long dlb_sha256_block(__u32 cpu, __u32 block)
{
	struct dlb_sha256 *s = DLB_SHA_STATE(cpu);
	const __u8 *m;
	__u32 *w;
	__u32 a, b, c, d, e, f, g, h;

	if (!s)
		return 1;
	m = s->msg + ((block * 64) & (DLB_SHA_MSG_BYTES - 64));
	w = s->w;
#pragma unroll
	for (int i = 0; i < 16; i++)
		w[i] = bpf_ntohl(*(const __u32 *)(m + 4 * i));
#pragma unroll
	for (int i = 16; i < 64; i++) {
		__u32 x, y, s0, s1;

		DLB_SHA_ROUND_BARRIER();
		x = w[i - 15];
		y = w[i - 2];
		s0 = DLB_SHA_ROTR(x, 7) ^ DLB_SHA_ROTR(x, 18) ^ (x >> 3);
		s1 = DLB_SHA_ROTR(y, 17) ^ DLB_SHA_ROTR(y, 19) ^ (y >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
	e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
#pragma unroll
	for (int i = 0; i < 64; i++) {
		__u32 s0, s1, ch, maj, t1;

		DLB_SHA_ROUND_BARRIER();
		s1 = DLB_SHA_ROTR(e, 6) ^ DLB_SHA_ROTR(e, 11) ^ DLB_SHA_ROTR(e, 25);
		ch = (e & f) ^ (~e & g);
		t1 = h + s1 + ch + dlb_sha256_k[i] + w[i];
		s0 = DLB_SHA_ROTR(a, 2) ^ DLB_SHA_ROTR(a, 13) ^ DLB_SHA_ROTR(a, 22);
		maj = (a & b) ^ (a & c) ^ (b & c);
		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + s0 + maj;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
	return 0;
}

static long dlb_sha256_step(__u32 idx, __u32 *cpu_arg)
{
	return dlb_sha256_block(*(volatile __u32 *)cpu_arg, idx) ? 1 : 0;
}

/* v & mask, kept in the code: the compiler drops a mask it can prove changes nothing,
 * and the verifier may not know that bound on the register it then uses. */
static __always_inline __u32 dlb_keep_mask(__u32 v, __u32 mask)
{
	__u64 x = v;

	asm volatile("%0 &= %1" : "+r"(x) : "i"(mask));
	return (__u32)x;
}

/* SHA-256 of the CPU's msg[0, len) into its h (the message is padded in place): 1, or 0
 * when len is over DLB_SHA_MAX_LEN. */
static __always_inline long dlb_sha256_run(__u32 cpu, __u32 len)
{
	struct dlb_sha256 *s = DLB_SHA_STATE(cpu);
	__u32 blocks, end, p;

	if (!s || len > DLB_SHA_MAX_LEN)
		return 0;
	/* the message, 0x80, zeros, then its length in bits (64-bit big-endian) at the end
	 * of the last block */
	blocks = (len + 9 + 63) / 64;
	end = blocks * 64;
	p = len;
#pragma unroll
	for (int k = 0; k < 8; k++) {
		if (!(p & 7))
			break;
		s->msg[dlb_keep_mask(p, DLB_SHA_MSG_BYTES - 1)] = 0;
		p++;
	}
#pragma clang loop unroll(disable)
	for (int k = 0; k < 64 / 8 + 2; k++) {   /* end - p < 64 + 9 */
		if (p >= end)
			break;
		*(__u64 *)(s->msg + dlb_keep_mask(p, DLB_SHA_MSG_BYTES - 8)) = 0;
		p += 8;
	}
	s->msg[dlb_keep_mask(len, DLB_SHA_MSG_BYTES - 1)] = 0x80;
	*(__u64 *)(s->msg + dlb_keep_mask(end - 8, DLB_SHA_MSG_BYTES - 8)) =
		__builtin_bswap64((__u64)len * 8);
	s->h[0] = 0x6a09e667, s->h[1] = 0xbb67ae85, s->h[2] = 0x3c6ef372, s->h[3] = 0xa54ff53a;
	s->h[4] = 0x510e527f, s->h[5] = 0x9b05688c, s->h[6] = 0x1f83d9ab, s->h[7] = 0x5be0cd19;
	bpf_loop(blocks, dlb_sha256_step, &cpu, 0);
	return 1;
}
